//! The shared store's decisions about sessions, ownership and refreshes (docs/cluster.md
//! "Ownership", "Refresh under fencing"). Every method is one atomic compare-and-set taking the
//! store's clock `now`; a refusal changes nothing and says why.
//!
//! Fencing tokens: a node session has an `epoch` (+1 on every acquire), an account an
//! `owner_gen` (+1 on every owner change) and a `token_version` (+1 on every stored rotation),
//! and a refresh in flight an `intent_gen`. A write is accepted only at the values its writer
//! read, so a paused node that wakes up after a takeover ("zombie") can change nothing.

use super::{Ms, NodeId};
use std::collections::BTreeMap;

/// A node session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// +1 on every acquire of this node id.
    pub epoch: u64,
    /// Store time the session lapses at unless renewed.
    pub expires_at: Ms,
}

/// The owner of an account: a node in one of its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning node.
    pub node: NodeId,
    /// The session (epoch) it owns the account in.
    pub epoch: u64,
}

/// A refresh the owner started and has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// +1 on every begun refresh of the account.
    pub intent_gen: u64,
    /// Store time by which the refresh call is over (HTTP timeout + persistence + margin).
    pub deadline: Ms,
    /// The token version the call uses.
    pub token_version: u64,
    /// Drawn by the node that began it, fresh for every refresh (0: none, an intent stored
    /// before nonces existed). A begin whose answer was lost is sent again with the same
    /// nonce, which is how [`Rules::begin_refresh`] knows the standing intent is that begin's
    /// and was never used.
    pub nonce: u64,
}

/// One account's ownership row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRow {
    /// Current owner, if any.
    pub owner: Option<Owner>,
    /// +1 on every owner change.
    pub owner_gen: u64,
    /// +1 on every stored token rotation (and import of fresh tokens).
    pub token_version: u64,
    /// The refresh in flight, if any.
    pub intent: Option<Intent>,
    /// Last begun intent generation.
    pub last_intent_gen: u64,
    /// The intent generation of the last rotation stored by [`Rules::finish_refresh`] (0:
    /// none): how a finish whose answer was lost is recognised when it is sent again.
    pub finished_intent_gen: u64,
    /// A refresh may have used the current refresh token without its result being stored:
    /// nobody refreshes until fresh tokens are imported (a re-login).
    pub refresh_ambiguous: bool,
}

/// Why the store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Acquire: this node id has a session that has not lapsed (a restart too soon, or a
    /// second process with the same id).
    #[error("node {0} still has a live session")]
    SessionLive(NodeId),
    /// The caller's session is not the live one at this epoch (lapsed, or superseded).
    #[error("the session is lost")]
    SessionLost,
    /// The account's owner is alive and is not the caller.
    #[error("the account is owned by a live session")]
    OwnedElsewhere,
    /// The caller read an older `owner_gen` (another node changed the owner since).
    #[error("stale owner generation")]
    StaleOwnerGen,
    /// The caller is not the account's owner at this generation.
    #[error("not the owner")]
    NotOwner,
    /// A refresh is in flight; release and a second refresh wait for it.
    #[error("a refresh is in flight")]
    RefreshInFlight,
    /// The session would lapse before the refresh deadline: another node could take over while
    /// the call is in flight.
    #[error("the session does not outlive the refresh deadline")]
    SessionTooShort,
    /// The account is `refresh_ambiguous`: only fresh tokens clear it.
    #[error("refresh is ambiguous: the account needs a re-login or an import")]
    Ambiguous,
    /// Finish: the intent or the token version is not the one begun.
    #[error("stale refresh intent")]
    StaleIntent,
    /// No such account.
    #[error("unknown account")]
    UnknownAccount,
}

/// What a successful claim hands the new owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The account's new owner generation (every later write carries it).
    pub owner_gen: u64,
    /// The previous owner left a refresh whose outcome is unknown: the account is now
    /// `refresh_ambiguous` and must not be refreshed with its stored refresh token.
    pub ambiguous: bool,
}

/// The whole shared state: sessions and account rows.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Node sessions by node id.
    pub sessions: BTreeMap<NodeId, Session>,
    /// Account rows by account id.
    pub accounts: BTreeMap<String, AccountRow>,
}

impl Rules {
    /// True if `node` holds a session at `epoch` that has not lapsed at `now`.
    pub fn session_live(&self, node: &str, epoch: u64, now: Ms) -> bool {
        self.sessions
            .get(node)
            .is_some_and(|s| s.epoch == epoch && s.expires_at > now)
    }

    /// The nodes whose sessions are live at `now`, with their epochs.
    pub fn live_nodes(&self, now: Ms) -> Vec<(NodeId, u64)> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.expires_at > now)
            .map(|(n, s)| (n.clone(), s.epoch))
            .collect()
    }

    /// Starts a session for `node`: a new epoch, `ttl` from now. Never steals a live session.
    pub fn acquire(&mut self, node: &str, ttl: Ms, now: Ms) -> Result<u64, Refusal> {
        let epoch = match self.sessions.get(node) {
            Some(s) if s.expires_at > now => return Err(Refusal::SessionLive(node.to_owned())),
            Some(s) => s.epoch + 1,
            None => 1,
        };
        self.sessions.insert(
            node.to_owned(),
            Session {
                epoch,
                expires_at: now + ttl,
            },
        );
        Ok(epoch)
    }

    /// Extends the session by `ttl` from now, only while it is live at this epoch. Returns
    /// the time left (what the node subtracts its margin from).
    pub fn renew(&mut self, node: &str, epoch: u64, ttl: Ms, now: Ms) -> Result<Ms, Refusal> {
        if !self.session_live(node, epoch, now) {
            return Err(Refusal::SessionLost);
        }
        if let Some(s) = self.sessions.get_mut(node) {
            s.expires_at = now + ttl;
        }
        Ok(ttl)
    }

    /// Ends the session at once (planned shutdown, after releasing its accounts).
    pub fn end_session(&mut self, node: &str, epoch: u64, now: Ms) -> Result<(), Refusal> {
        if !self.session_live(node, epoch, now) {
            return Err(Refusal::SessionLost);
        }
        if let Some(s) = self.sessions.get_mut(node) {
            s.expires_at = now;
        }
        Ok(())
    }

    /// Adds an account row (import); an existing row is left as it is.
    pub fn insert_account(&mut self, id: &str) {
        self.accounts.entry(id.to_owned()).or_default();
    }

    /// True if the account's owner session is live at `now`.
    pub fn owner_live(&self, row: &AccountRow, now: Ms) -> bool {
        row.owner
            .as_ref()
            .is_some_and(|o| self.session_live(&o.node, o.epoch, now))
    }

    /// Takes `account` for `node`'s session `epoch` if it is unowned or its owner's session
    /// lapsed, at the `owner_gen` the claimer read. An expired refresh intent whose token
    /// version is unchanged makes the account `refresh_ambiguous` (docs/cluster.md step 5).
    pub fn claim(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        seen_gen: u64,
        now: Ms,
    ) -> Result<Claimed, Refusal> {
        if !self.session_live(node, epoch, now) {
            return Err(Refusal::SessionLost);
        }
        let row = self.accounts.get(account).ok_or(Refusal::UnknownAccount)?;
        if row.owner_gen != seen_gen {
            return Err(Refusal::StaleOwnerGen);
        }
        if self.owner_live(row, now) {
            return Err(Refusal::OwnedElsewhere);
        }
        let row = self
            .accounts
            .get_mut(account)
            .ok_or(Refusal::UnknownAccount)?;
        if let Some(i) = row.intent.take()
            && i.token_version == row.token_version
        {
            row.refresh_ambiguous = true;
        }
        row.owner = Some(Owner {
            node: node.to_owned(),
            epoch,
        });
        row.owner_gen += 1;
        Ok(Claimed {
            owner_gen: row.owner_gen,
            ambiguous: row.refresh_ambiguous,
        })
    }

    /// The row, if `node`@`epoch` owns it at `owner_gen`.
    fn owned_mut(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
    ) -> Result<&mut AccountRow, Refusal> {
        let row = self
            .accounts
            .get_mut(account)
            .ok_or(Refusal::UnknownAccount)?;
        let mine = row
            .owner
            .as_ref()
            .is_some_and(|o| o.node == node && o.epoch == epoch);
        if !mine || row.owner_gen != owner_gen {
            return Err(Refusal::NotOwner);
        }
        Ok(row)
    }

    /// Gives `account` up (planned move): only its owner at `owner_gen`, and only with no
    /// refresh in flight. The next claimer needs no TTL wait.
    pub fn release(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
    ) -> Result<(), Refusal> {
        let row = self.owned_mut(account, node, epoch, owner_gen)?;
        if row.intent.is_some() {
            return Err(Refusal::RefreshInFlight);
        }
        row.owner = None;
        row.owner_gen += 1;
        Ok(())
    }

    /// Commits a fenced refresh intent before the token endpoint is called: only the owner,
    /// only if its session outlives `deadline`, never on an ambiguous account, one at a time.
    /// Returns the intent the call may use (its generation and token version).
    ///
    /// The same begin sent again — its first answer was lost, so its sender never called the
    /// token endpoint under it — finds the intent it committed by its `nonce` and takes it
    /// over with the new deadline; any other standing intent may have been used and refuses
    /// the begin (`RefreshInFlight`) until it is finished, abandoned or taken by a claim.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        nonce: u64,
        deadline: Ms,
        now: Ms,
    ) -> Result<Intent, Refusal> {
        if !self.session_live(node, epoch, now) {
            return Err(Refusal::SessionLost);
        }
        let outlives = self
            .sessions
            .get(node)
            .is_some_and(|s| s.expires_at >= deadline);
        let row = self.owned_mut(account, node, epoch, owner_gen)?;
        if row.refresh_ambiguous {
            return Err(Refusal::Ambiguous);
        }
        let own_lost_begin = row
            .intent
            .as_ref()
            .is_some_and(|i| nonce != 0 && i.nonce == nonce);
        if row.intent.is_some() && !own_lost_begin {
            return Err(Refusal::RefreshInFlight);
        }
        if !outlives {
            return Err(Refusal::SessionTooShort);
        }
        let intent = match row.intent.take() {
            Some(lost) => Intent { deadline, ..lost },
            None => {
                row.last_intent_gen += 1;
                Intent {
                    intent_gen: row.last_intent_gen,
                    deadline,
                    token_version: row.token_version,
                    nonce,
                }
            }
        };
        row.intent = Some(intent.clone());
        Ok(intent)
    }

    /// Stores a rotation: a compare-and-set on the owner generation, the intent and the token
    /// version it began with. Returns the new token version. A zombie (its account claimed by
    /// another node since) is refused, whatever its clock says.
    ///
    /// The same finish sent again — its first answer was lost (a connection cut after the
    /// commit) — is accepted without a change and returns the same version, as long as the
    /// row still shows exactly that rotation: the same owner and generation, no intent, this
    /// intent the last one finished, and the token version it made (no import since).
    pub fn finish_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
    ) -> Result<u64, Refusal> {
        let row = self.owned_mut(account, node, epoch, owner_gen)?;
        let landed = row.intent.is_none()
            && row.finished_intent_gen == intent.intent_gen
            && row.token_version == intent.token_version + 1;
        if landed {
            return Ok(row.token_version);
        }
        if row.intent.as_ref() != Some(intent) || row.token_version != intent.token_version {
            return Err(Refusal::StaleIntent);
        }
        row.intent = None;
        row.finished_intent_gen = intent.intent_gen;
        row.token_version += 1;
        Ok(row.token_version)
    }

    /// Ends a refresh that stored nothing. `reached_upstream = false` (refused before sending,
    /// or a definite answer that rotated nothing) clears the intent; `true` with no result (a
    /// timeout after sending) makes the account `refresh_ambiguous`, since the call may have
    /// consumed the refresh token.
    pub fn abandon_refresh(
        &mut self,
        account: &str,
        node: &str,
        epoch: u64,
        owner_gen: u64,
        intent: &Intent,
        reached_upstream: bool,
    ) -> Result<(), Refusal> {
        let row = self.owned_mut(account, node, epoch, owner_gen)?;
        if row.intent.as_ref() != Some(intent) {
            return Err(Refusal::StaleIntent);
        }
        row.intent = None;
        if reached_upstream {
            row.refresh_ambiguous = true;
        }
        Ok(())
    }

    /// Fresh tokens arrived from outside (an import, a re-login): a new token version, no
    /// intent, not ambiguous. The owner, if any, keeps the account.
    pub fn import_tokens(&mut self, account: &str) -> Result<u64, Refusal> {
        let row = self
            .accounts
            .get_mut(account)
            .ok_or(Refusal::UnknownAccount)?;
        row.token_version += 1;
        row.intent = None;
        row.refresh_ambiguous = false;
        Ok(row.token_version)
    }
}
