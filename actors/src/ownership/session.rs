//! One node's view of its own session lease (docs/cluster.md "Ownership"): when to renew, and
//! until when it may act as an owner.
//!
//! The store's clock decides when the session lapses; the node cannot read that clock, so it
//! keeps a **local deadline** on its own monotonic clock: the instant taken *before* a renewal
//! was sent, plus the time the store said was left, minus a margin. Because the store extended
//! the session no earlier than the request was sent, the store's expiry always comes after the
//! local deadline (clocks run at the same rate; the margin absorbs rate error). Past the
//! deadline the node **self-fences**: it stops refreshing and admitting until a renewal
//! succeeds, or the session is re-acquired under a new epoch.

use super::Ms;

/// What the node may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No session: acquire one (at start, or after the store refused a renewal).
    Unacquired,
    /// The local deadline is ahead: serve, refresh (if the window fits), claim.
    Held,
    /// The local deadline passed without a successful renewal: refresh nothing, admit nothing.
    Fenced,
}

/// The node's session lease, driven by its monotonic clock.
#[derive(Debug, Clone)]
pub struct SessionLease {
    ttl: Ms,
    margin: Ms,
    epoch: Option<u64>,
    /// Local monotonic time until which the node may act as the owner.
    deadline: Ms,
    /// Send time of the last granted request.
    renewed_at: Ms,
}

/// One acquire or renewal on its way to the store: its local send time, taken before sending.
/// Each answer is applied with its own ticket, so a late answer to an older request can never
/// stretch the deadline past what that older request earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    sent_at: Ms,
}

impl SessionLease {
    /// A lease of `ttl` renewed every `ttl / 5`, acting only until `margin` before the last
    /// renewal's send time + the time the store granted.
    pub fn new(ttl: Ms, margin: Ms) -> Self {
        Self {
            ttl,
            margin,
            epoch: None,
            deadline: Ms::MIN,
            renewed_at: Ms::MIN,
        }
    }

    /// The TTL asked of the store.
    pub fn ttl(&self) -> Ms {
        self.ttl
    }

    /// The epoch of the session, once acquired.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Where the node stands at local time `now`.
    pub fn standing(&self, now: Ms) -> Standing {
        match self.epoch {
            None => Standing::Unacquired,
            Some(_) if now < self.deadline => Standing::Held,
            Some(_) => Standing::Fenced,
        }
    }

    /// Milliseconds left before the local deadline at `now` (0 once passed, `None` without a
    /// session): what an operator reads to see how close a node is to self-fencing.
    pub fn deadline_left(&self, now: Ms) -> Option<Ms> {
        self.epoch.map(|_| (self.deadline - now).max(0))
    }

    /// True if the node may start a refresh whose whole window (`window` ms: HTTP timeout +
    /// persistence + margin) ends before its local deadline.
    pub fn may_refresh(&self, now: Ms, window: Ms) -> bool {
        self.standing(now) == Standing::Held && now + window < self.deadline
    }

    /// Local time the next renewal is due (every TTL/5 after the last granted send).
    pub fn renew_due(&self) -> Ms {
        self.renewed_at.saturating_add(self.ttl / 5)
    }

    /// Takes the send time of an acquire or renewal; call it *before* sending.
    pub fn sending(&self, now: Ms) -> Ticket {
        Ticket { sent_at: now }
    }

    /// The store granted the session (`acquire` or `renew`) at `epoch` with `remaining` ms
    /// left, answering the request of `ticket`.
    pub fn granted(&mut self, ticket: Ticket, epoch: u64, remaining: Ms) {
        match self.epoch {
            // A grant for another epoch than ours is not a renewal of ours.
            Some(e) if e != epoch => return,
            Some(_) => {}
            None => {
                self.epoch = Some(epoch);
                self.deadline = Ms::MIN;
            }
        }
        self.deadline = self.deadline.max(ticket.sent_at + remaining - self.margin);
        self.renewed_at = self.renewed_at.max(ticket.sent_at);
    }

    /// The store refused a renewal: the session is gone; every owned account must be treated
    /// as lost and the session re-acquired (a new epoch).
    pub fn lost(&mut self) {
        self.epoch = None;
        self.deadline = Ms::MIN;
    }
}
