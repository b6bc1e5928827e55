//! Client sessions: the outcome of each `(client, seq)`, so retries apply once.
//!
//! Bounded three ways: a client's acknowledged outcomes are dropped as soon as it
//! says so (`lowest_unacked_seq`); at most [`MAX_OUTCOMES_PER_SESSION`] are kept per
//! client; sessions idle for [`SESSION_TTL_MS`] of log time expire, and beyond
//! [`MAX_SESSIONS`] the least recently active one is evicted. A write on an expired
//! session is refused with `SessionExpired` rather than risk applying it twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::{ClientId, WriteOutcome};

/// How long an idle session lives, in log time.
pub const SESSION_TTL_MS: u64 = 60 * 60 * 1000;
/// The most sessions kept.
pub const MAX_SESSIONS: usize = 100_000;
/// The most outcomes kept per session.
pub const MAX_OUTCOMES_PER_SESSION: usize = 1024;

/// One client's session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Log time of the client's last command.
    pub last_active_ms: u64,
    /// Outcomes below this sequence number are forgotten.
    pub floor_seq: u64,
    /// Outcomes by sequence number.
    pub outcomes: BTreeMap<u64, WriteOutcome>,
}

/// What a session says about a write before it is applied.
pub enum Admission {
    /// Apply it.
    New,
    /// It was applied before; here is its outcome.
    Duplicate(WriteOutcome),
    /// The session is unknown, expired, or the outcome was forgotten.
    Expired,
}

/// Every live session.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Sessions by client.
    by_client: BTreeMap<ClientId, Session>,
    /// `(last_active_ms, client)`, oldest first, for expiry and eviction.
    by_activity: BTreeSet<(u64, ClientId)>,
}

impl Sessions {
    /// Adds a session loaded from disk.
    pub fn insert_loaded(&mut self, client: ClientId, session: Session) {
        self.by_activity.insert((session.last_active_ms, client));
        self.by_client.insert(client, session);
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Removes sessions idle since before `now_ms - SESSION_TTL_MS`; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<ClientId> {
        let cutoff = now_ms.saturating_sub(SESSION_TTL_MS);
        let mut expired = Vec::new();
        while let Some(&(last_active, client)) = self.by_activity.first() {
            if last_active >= cutoff {
                break;
            }
            self.by_activity.pop_first();
            self.by_client.remove(&client);
            expired.push(client);
        }
        expired
    }

    /// Opens `client`'s session (or refreshes it); returns sessions evicted to make room.
    pub fn open(&mut self, client: ClientId, now_ms: u64) -> Vec<ClientId> {
        let mut evicted = Vec::new();
        if !self.by_client.contains_key(&client) {
            while self.by_client.len() >= MAX_SESSIONS {
                let Some((_, oldest)) = self.by_activity.pop_first() else {
                    break;
                };
                self.by_client.remove(&oldest);
                evicted.push(oldest);
            }
            self.by_client.insert(client, Session::default());
        }
        self.touch(client, now_ms);
        evicted
    }

    fn touch(&mut self, client: ClientId, now_ms: u64) {
        if let Some(session) = self.by_client.get_mut(&client) {
            self.by_activity.remove(&(session.last_active_ms, client));
            session.last_active_ms = session.last_active_ms.max(now_ms);
            self.by_activity.insert((session.last_active_ms, client));
        }
    }

    /// Decides whether `(client, seq)` is new, a duplicate, or too old, after
    /// forgetting the outcomes the client has acknowledged.
    pub fn admit(&mut self, client: ClientId, seq: u64, lowest_unacked_seq: u64, now_ms: u64) -> Admission {
        let Some(session) = self.by_client.get_mut(&client) else {
            return Admission::Expired;
        };
        if lowest_unacked_seq > session.floor_seq {
            session.floor_seq = lowest_unacked_seq;
            session.outcomes = session.outcomes.split_off(&lowest_unacked_seq);
        }
        let admission = if let Some(outcome) = session.outcomes.get(&seq) {
            Admission::Duplicate(outcome.clone())
        } else if seq < session.floor_seq {
            Admission::Expired
        } else {
            Admission::New
        };
        self.touch(client, now_ms);
        admission
    }

    /// Remembers the outcome of a new write.
    pub fn record(&mut self, client: ClientId, seq: u64, outcome: WriteOutcome) {
        if let Some(session) = self.by_client.get_mut(&client) {
            session.outcomes.insert(seq, outcome);
            while session.outcomes.len() > MAX_OUTCOMES_PER_SESSION {
                if let Some((forgotten, _)) = session.outcomes.pop_first() {
                    session.floor_seq = session.floor_seq.max(forgotten + 1);
                }
            }
        }
    }

    /// The session of `client`, for persisting.
    pub fn get(&self, client: &ClientId) -> Option<&Session> {
        self.by_client.get(client)
    }
}
