//! The cluster node's families (docs/cluster.md "How a node runs"), read at scrape time from
//! the counters the node's loops keep (`cluster::counters`). Only a cluster node has them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rotor_actors::ownership::session::Standing;
use std::sync::atomic::Ordering;

use crate::cluster::counters::{self, CLAIMS, OWNED, Outcomes, RELEASES, RENEWALS};

/// Labels of the outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    /// granted, refused or failed.
    outcome: &'static str,
}

/// Labels of the standing gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Where {
    /// unacquired, held or fenced.
    standing: &'static str,
}

fn outcomes(registry: &mut Registry, name: &str, help: &str, of: &Outcomes) {
    let family = Family::<Outcome, Counter>::default();
    for (outcome, n) in of.by_outcome() {
        family.get_or_create(&Outcome { outcome }).inc_by(n);
    }
    registry.register(name, help, family);
}

/// Registers the node's families, if this process is a cluster node.
pub fn register(registry: &mut Registry) {
    let Some(now) = counters::standing() else {
        return;
    };
    outcomes(
        registry,
        "codex_rotor_cluster_renewals",
        "Acquires and renewals of this node's session lease, by outcome",
        &RENEWALS,
    );
    outcomes(
        registry,
        "codex_rotor_cluster_claims",
        "Claims of accounts by this node, by outcome",
        &CLAIMS,
    );
    let released = Counter::<u64>::default();
    released.inc_by(RELEASES.load(Ordering::Relaxed));
    registry.register(
        "codex_rotor_cluster_releases",
        "Accounts this node handed over by a planned release",
        released,
    );
    let standing = Family::<Where, Gauge>::default();
    for s in [Standing::Unacquired, Standing::Held, Standing::Fenced] {
        let name = counters::standing_name(s);
        standing
            .get_or_create(&Where { standing: name })
            .set(i64::from(s == now));
    }
    registry.register(
        "codex_rotor_cluster_standing",
        "Where this node stands: 1 for its current standing (held serves; fenced and unacquired do not)",
        standing,
    );
    let owned = Gauge::<i64>::default();
    owned.set(i64::try_from(OWNED.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    registry.register(
        "codex_rotor_cluster_accounts_owned",
        "Accounts this node owns in its current session",
        owned,
    );
}
