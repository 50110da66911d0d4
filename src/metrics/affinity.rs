//! The shared affinity table's families (cluster mode, docs/cluster.md "Requests across
//! nodes"), read from the process-wide counters in [`crate::cluster::affinity`] at each
//! scrape. Only a process that runs the table has them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::cluster::affinity;

/// Labels of `codex_rotor_cluster_affinity_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Lookup {
    /// `hit_local`, `hit_peer`, `miss` or `error` (no connection, an error, the timeout).
    outcome: &'static str,
}

/// Labels of `codex_rotor_cluster_affinity_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dropped {
    /// `full` (the queue was full: the oldest went) or `failed` (its flush failed).
    reason: &'static str,
}

/// Adds the shared affinity families to a scrape, if this process runs the table.
pub(super) fn register(scrape: &mut Registry) {
    if !affinity::running() {
        return;
    }
    let lookups = Family::<Lookup, Counter>::default();
    for (outcome, n) in affinity::lookups_total() {
        lookups.get_or_create(&Lookup { outcome }).inc_by(n);
    }
    scrape.register(
        "codex_rotor_cluster_affinity_lookups",
        "Shared affinity lookups for conversations this node did not know, by outcome",
        lookups,
    );
    let written = Counter::<u64>::default();
    written.inc_by(affinity::written_total());
    scrape.register(
        "codex_rotor_cluster_affinity_writes",
        "Rows the shared affinity writer upserted",
        written,
    );
    let dropped = Family::<Dropped, Counter>::default();
    for (reason, n) in affinity::dropped_total() {
        dropped.get_or_create(&Dropped { reason }).inc_by(n);
    }
    scrape.register(
        "codex_rotor_cluster_affinity_dropped",
        "Affinities never written to the shared table, by reason",
        dropped,
    );
}
