//! The families of requests that crossed nodes (cluster mode, docs/cluster.md), read from the
//! process-wide counters in [`crate::cluster::traffic`] at each scrape. A single node exposes
//! them at 0.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::cluster::traffic::{self, Sent, Why};

/// Labels of `codex_rotor_cluster_forwards_sent_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SentLabels {
    /// `affinity` (the conversation's account lives there) or `spill` (no local account could).
    reason: &'static str,
    /// `answered` (the peer's answer went to the client) or `failed` (served here instead).
    outcome: &'static str,
}

/// Labels of `codex_rotor_cluster_forwards_received_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceivedLabels {
    /// `accepted` (valid signature) or `refused`.
    outcome: &'static str,
}

/// Adds the forward families to a scrape.
pub(super) fn register(scrape: &mut Registry) {
    let sent = Family::<SentLabels, Counter>::default();
    for (why, reason) in [(Why::Affinity, "affinity"), (Why::Spill, "spill")] {
        for (how, outcome) in [(Sent::Answered, "answered"), (Sent::Failed, "failed")] {
            sent.get_or_create(&SentLabels { reason, outcome })
                .inc_by(traffic::sent_total(why, how));
        }
    }
    scrape.register(
        "codex_rotor_cluster_forwards_sent",
        "Requests this node forwarded to a peer, by reason and outcome",
        sent,
    );
    let received = Family::<ReceivedLabels, Counter>::default();
    for (accepted, outcome) in [(true, "accepted"), (false, "refused")] {
        received
            .get_or_create(&ReceivedLabels { outcome })
            .inc_by(traffic::received_total(accepted));
    }
    scrape.register(
        "codex_rotor_cluster_forwards_received",
        "Forwarded requests this node received, by signature check",
        received,
    );
    let nowhere = Counter::<u64>::default();
    nowhere.inc_by(traffic::nowhere_total());
    scrape.register(
        "codex_rotor_cluster_unplaced",
        "Requests no local account and no peer could take (answered 429 or 503)",
        nowhere,
    );
}
