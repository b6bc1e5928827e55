//! The replicated control state and its `apply`.

use std::collections::{BTreeMap, BTreeSet};

use cairn_raft::codec;
use cairn_raft::{ApplyContext, LoadError, ReplicatedState, StateWrites};
use cairn_storage::Row;

use super::command::{ClientId, ControlCommand, ControlOutcome, Operation, WriteAck, WriteOutcome};
use super::sessions::{Admission, Session, Sessions};
use crate::catalog::{CatalogError, DatasetEntry, DatasetName, EntryKind, PublishItem, MAX_PUBLISH_BYTES};

/// Row key prefixes in the `state` column.
const DATASET_PREFIX: &[u8] = b"d/";
const SESSION_PREFIX: &[u8] = b"s/";
const NEXT_ORDER_KEY: &[u8] = b"m/next_order";
const CLOCK_KEY: &[u8] = b"m/clock";

/// Everything the schedulers agree on through Raft (today: the dataset catalog and
/// client sessions).
#[derive(Debug, Default)]
pub struct ControlState {
    /// Published datasets by name.
    datasets: BTreeMap<DatasetName, DatasetEntry>,
    /// Names by publish order, for `list`.
    by_order: BTreeMap<u64, DatasetName>,
    /// The order number the next new name gets.
    next_order: u64,
    /// The latest leader clock seen in the log; never moves backwards.
    clock_ms: u64,
    /// Client sessions for exactly-once writes.
    sessions: Sessions,
}

fn dataset_key(name: &DatasetName) -> Vec<u8> {
    [DATASET_PREFIX, name.as_str().as_bytes()].concat()
}

fn session_key(client: &ClientId) -> Vec<u8> {
    [SESSION_PREFIX, client.0.as_slice()].concat()
}

fn load_error(what: &str, error: impl std::fmt::Display) -> LoadError {
    LoadError {
        reason: format!("{what}: {error}"),
    }
}

impl ControlState {
    /// Dataset names in publish order.
    pub fn list(&self) -> Vec<String> {
        self.by_order.values().map(|name| name.as_str().to_string()).collect()
    }

    /// One dataset.
    pub fn get(&self, name: &DatasetName) -> Option<&DatasetEntry> {
        self.datasets.get(name)
    }

    /// How many datasets are published.
    pub fn dataset_count(&self) -> usize {
        self.datasets.len()
    }

    /// How many client sessions are live.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Checks a publish without changing anything; shared by the server (before
    /// proposing) and `apply` (deterministically, again).
    pub fn check_publish(items: &[PublishItem]) -> Result<(), CatalogError> {
        if items.is_empty() {
            return Err(CatalogError::NothingToPublish);
        }
        let mut seen = BTreeSet::new();
        let mut total = 0usize;
        for item in items {
            if !seen.insert(&item.name) {
                return Err(CatalogError::DuplicateName {
                    name: item.name.to_string(),
                });
            }
            item.validate()?;
            total += item.size();
        }
        if total > MAX_PUBLISH_BYTES {
            return Err(CatalogError::PublishTooLarge {
                bytes: total,
                limit: MAX_PUBLISH_BYTES,
            });
        }
        Ok(())
    }

    fn publish(
        &mut self,
        items: Vec<PublishItem>,
        override_existing: bool,
        publisher: String,
        log_index: u64,
        writes: &mut StateWrites,
    ) -> WriteOutcome {
        Self::check_publish(&items)?;
        if !override_existing {
            let existing: Vec<String> = items
                .iter()
                .filter(|item| self.datasets.contains_key(&item.name))
                .map(|item| item.name.to_string())
                .collect();
            if !existing.is_empty() {
                return Err(CatalogError::AlreadyExists { names: existing });
            }
        }
        for item in items {
            let order = match self.datasets.get(&item.name) {
                Some(previous) => previous.order,
                None => {
                    let order = self.next_order;
                    self.next_order += 1;
                    self.by_order.insert(order, item.name.clone());
                    order
                }
            };
            let entry = DatasetEntry {
                name: item.name.clone(),
                kind: EntryKind::Value(item.value),
                attributes: item.attributes,
                publisher: publisher.clone(),
                published_at_index: log_index,
                order,
            };
            match codec::encode("dataset entry", &entry) {
                Ok(bytes) => writes.put(dataset_key(&item.name), bytes),
                Err(error) => {
                    // Cannot happen for these plain types; refuse rather than diverge.
                    return Err(CatalogError::MalformedCommand {
                        reason: error.to_string(),
                    });
                }
            }
            self.datasets.insert(item.name, entry);
        }
        writes.put(NEXT_ORDER_KEY.to_vec(), self.next_order.to_be_bytes().to_vec());
        Ok(WriteAck { log_index })
    }

    fn unpublish(&mut self, name: DatasetName, log_index: u64, writes: &mut StateWrites) -> WriteOutcome {
        let Some(entry) = self.datasets.remove(&name) else {
            return Err(CatalogError::NotFound { name: name.to_string() });
        };
        self.by_order.remove(&entry.order);
        writes.delete(dataset_key(&name));
        Ok(WriteAck { log_index })
    }

    fn write_session(&self, client: ClientId, writes: &mut StateWrites) {
        match self
            .sessions
            .get(&client)
            .map(|session| codec::encode("session", session))
        {
            Some(Ok(bytes)) => writes.put(session_key(&client), bytes),
            Some(Err(error)) => tracing::error!(%client, %error, "cannot encode a session"),
            None => writes.delete(session_key(&client)),
        }
    }

    fn advance_clock(&mut self, now_ms: u64, writes: &mut StateWrites) {
        self.clock_ms = self.clock_ms.max(now_ms);
        writes.put(CLOCK_KEY.to_vec(), self.clock_ms.to_be_bytes().to_vec());
        for client in self.sessions.expire(self.clock_ms) {
            writes.delete(session_key(&client));
        }
    }

    fn apply_command(&mut self, log_index: u64, command: ControlCommand, writes: &mut StateWrites) -> ControlOutcome {
        match command {
            ControlCommand::OpenSession { client, now_ms } => {
                self.advance_clock(now_ms, writes);
                for evicted in self.sessions.open(client, self.clock_ms) {
                    writes.delete(session_key(&evicted));
                }
                self.write_session(client, writes);
                ControlOutcome::SessionOpened
            }
            ControlCommand::Write {
                request,
                now_ms,
                operation,
            } => {
                self.advance_clock(now_ms, writes);
                let client = request.client;
                let admission = self
                    .sessions
                    .admit(client, request.seq, request.lowest_unacked_seq, self.clock_ms);
                let outcome = match admission {
                    // Not recorded, but `admit` may have moved the session's floor and
                    // activity: the row is written below so disk matches memory.
                    Admission::Expired => Err(CatalogError::SessionExpired),
                    Admission::Duplicate(outcome) => outcome,
                    Admission::New => {
                        let outcome = match operation {
                            Operation::Publish {
                                items,
                                override_existing,
                                publisher,
                            } => self.publish(items, override_existing, publisher, log_index, writes),
                            Operation::Unpublish { name } => self.unpublish(name, log_index, writes),
                        };
                        self.sessions.record(client, request.seq, outcome.clone());
                        outcome
                    }
                };
                self.write_session(client, writes);
                ControlOutcome::Write(outcome)
            }
        }
    }
}

impl ReplicatedState for ControlState {
    fn load(rows: Vec<Row>) -> Result<Self, LoadError> {
        let mut state = ControlState::default();
        for (key, value) in rows {
            if let Some(name) = key.strip_prefix(DATASET_PREFIX) {
                let entry: DatasetEntry =
                    codec::decode("dataset entry", &value).map_err(|e| load_error("dataset", e))?;
                let expected = String::from_utf8_lossy(name);
                if entry.name.as_str() != expected {
                    return Err(load_error(
                        "dataset",
                        format!("row {expected:?} holds entry {:?}", entry.name),
                    ));
                }
                state.by_order.insert(entry.order, entry.name.clone());
                state.datasets.insert(entry.name.clone(), entry);
            } else if let Some(client) = key.strip_prefix(SESSION_PREFIX) {
                let client: [u8; 16] = client
                    .try_into()
                    .map_err(|_| load_error("session", "a session key is not 16 bytes"))?;
                let session: Session = codec::decode("session", &value).map_err(|e| load_error("session", e))?;
                state.sessions.insert_loaded(ClientId(client), session);
            } else if key == NEXT_ORDER_KEY {
                state.next_order = u64::from_be_bytes(
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| load_error("next order", "not 8 bytes"))?,
                );
            } else if key == CLOCK_KEY {
                state.clock_ms = u64::from_be_bytes(
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| load_error("clock", "not 8 bytes"))?,
                );
            } else {
                return Err(load_error(
                    "state",
                    format!("unknown row {:?}", String::from_utf8_lossy(&key)),
                ));
            }
        }
        Ok(state)
    }

    fn apply(&mut self, context: ApplyContext, command: &[u8], writes: &mut StateWrites) -> Vec<u8> {
        let outcome = match codec::decode::<ControlCommand>("control command", command) {
            Ok(command) => self.apply_command(context.log_index, command, writes),
            Err(error) => ControlOutcome::Write(Err(CatalogError::MalformedCommand {
                reason: error.to_string(),
            })),
        };
        match codec::encode("control outcome", &outcome) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot encode an outcome");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::InlineValue;
    use crate::control::command::RequestId;
    use crate::control::sessions::SESSION_TTL_MS;

    /// Applies commands and mirrors their row writes into a map, as RocksDB would.
    struct Harness {
        state: ControlState,
        rows: BTreeMap<Vec<u8>, Vec<u8>>,
        index: u64,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                state: ControlState::default(),
                rows: BTreeMap::new(),
                index: 0,
            }
        }

        fn apply(&mut self, command: &ControlCommand) -> ControlOutcome {
            self.index += 1;
            let mut writes = StateWrites::default();
            let bytes = codec::encode("command", command).expect("encodes");
            let outcome = self
                .state
                .apply(ApplyContext { log_index: self.index }, &bytes, &mut writes);
            for (key, value) in writes.into_rows() {
                match value {
                    Some(value) => self.rows.insert(key, value),
                    None => self.rows.remove(&key),
                };
            }
            codec::decode("outcome", &outcome).expect("decodes")
        }

        fn reloaded(&self) -> ControlState {
            ControlState::load(self.rows.clone().into_iter().collect()).expect("loads")
        }
    }

    const CLIENT: ClientId = ClientId([7; 16]);

    fn open(now_ms: u64) -> ControlCommand {
        ControlCommand::OpenSession { client: CLIENT, now_ms }
    }

    fn item(name: &str, value: &str) -> PublishItem {
        PublishItem {
            name: DatasetName::parse(name).expect("valid"),
            value: InlineValue {
                data: value.as_bytes().to_vec(),
                content_type: "text/plain".to_string(),
            },
            attributes: BTreeMap::new(),
        }
    }

    /// A write whose client has had no reply yet since seq 1 (so nothing is forgotten).
    fn write(seq: u64, now_ms: u64, operation: Operation) -> ControlCommand {
        acknowledged_write(seq, 1, now_ms, operation)
    }

    fn acknowledged_write(seq: u64, lowest_unacked_seq: u64, now_ms: u64, operation: Operation) -> ControlCommand {
        ControlCommand::Write {
            request: RequestId {
                client: CLIENT,
                seq,
                lowest_unacked_seq,
            },
            now_ms,
            operation,
        }
    }

    fn publish(seq: u64, items: Vec<PublishItem>, override_existing: bool) -> ControlCommand {
        write(
            seq,
            1_000,
            Operation::Publish {
                items,
                override_existing,
                publisher: "test".to_string(),
            },
        )
    }

    fn unpublish(seq: u64, name: &str) -> ControlCommand {
        write(
            seq,
            1_000,
            Operation::Unpublish {
                name: DatasetName::parse(name).expect("valid"),
            },
        )
    }

    fn error_of(outcome: ControlOutcome) -> CatalogError {
        match outcome {
            ControlOutcome::Write(Err(error)) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Publish order is first-publish order; override keeps the position; a failed
    /// multi-name publish changes nothing; unpublish of a missing name is not-found.
    #[test]
    fn catalog_semantics_follow_dask() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&publish(1, vec![item("b", "1")], false));
        harness.apply(&publish(2, vec![item("a", "2"), item("c", "3")], false));
        assert_eq!(harness.state.list(), ["b", "a", "c"]);
        let error = error_of(harness.apply(&publish(3, vec![item("d", "4"), item("a", "x")], false)));
        assert_eq!(error.to_string(), "dataset 'a' already exists");
        assert_eq!(
            harness.state.list(),
            ["b", "a", "c"],
            "nothing of a failed publish is applied"
        );
        harness.apply(&publish(4, vec![item("b", "new")], true));
        assert_eq!(harness.state.list(), ["b", "a", "c"], "override keeps the position");
        let name = DatasetName::parse("b").expect("valid");
        assert_eq!(
            harness.state.get(&name).map(|entry| entry.kind.clone()),
            Some(EntryKind::Value(InlineValue {
                data: b"new".to_vec(),
                content_type: "text/plain".to_string()
            }))
        );
        harness.apply(&unpublish(5, "a"));
        assert_eq!(harness.state.list(), ["b", "c"]);
        let error = error_of(harness.apply(&unpublish(6, "a")));
        assert_eq!(error.to_string(), "dataset 'a' not found");
        harness.apply(&publish(7, vec![item("a", "again")], false));
        assert_eq!(harness.state.list(), ["b", "c", "a"], "a republished name goes last");
    }

    /// The rows written by `apply` rebuild exactly the same state.
    #[test]
    fn rows_rebuild_the_same_state() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&publish(1, vec![item("x", "1"), item("y", "2")], false));
        harness.apply(&unpublish(2, "x"));
        harness.apply(&publish(3, vec![item("z", "3")], false));
        let reloaded = harness.reloaded();
        assert_eq!(reloaded.list(), harness.state.list());
        assert_eq!(reloaded.next_order, harness.state.next_order);
        assert_eq!(reloaded.clock_ms, harness.state.clock_ms);
        assert_eq!(reloaded.session_count(), 1);
        for name in harness.state.list() {
            let name = DatasetName::parse(&name).expect("valid");
            assert_eq!(reloaded.get(&name), harness.state.get(&name));
        }
    }

    /// A retried write returns its first outcome and is not applied again, even when
    /// the state changed in between.
    #[test]
    fn retried_writes_apply_once() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        let first = harness.apply(&publish(1, vec![item("x", "1")], false));
        harness.apply(&unpublish(2, "x"));
        let retry = harness.apply(&publish(1, vec![item("x", "1")], false));
        assert_eq!(retry, first);
        assert!(harness.state.list().is_empty(), "the retry must not publish again");
        let failure = harness.apply(&unpublish(3, "missing"));
        assert_eq!(harness.apply(&unpublish(3, "missing")), failure);
    }

    /// Writes on an unknown or expired session, or below the acknowledged floor, are
    /// refused instead of applied.
    #[test]
    fn expired_sessions_refuse_writes() {
        let mut harness = Harness::new();
        assert_eq!(
            error_of(harness.apply(&publish(1, vec![item("x", "1")], false))),
            CatalogError::SessionExpired
        );
        harness.apply(&open(1_000));
        harness.apply(&publish(5, vec![item("x", "1")], false));
        let name = DatasetName::parse("x").expect("valid");
        // Seq 6 says every write below 6 had its reply: the outcome of 5 is forgotten.
        harness.apply(&acknowledged_write(
            6,
            6,
            1_000,
            Operation::Unpublish { name: name.clone() },
        ));
        assert_eq!(
            error_of(harness.apply(&publish(5, vec![item("x", "1")], false))),
            CatalogError::SessionExpired
        );
        assert!(
            harness.state.list().is_empty(),
            "a forgotten write is refused, not re-applied"
        );
        // A refused write still moves the session (floor, activity): disk must match.
        harness.apply(&acknowledged_write(
            5,
            7,
            1_000,
            Operation::Unpublish { name: name.clone() },
        ));
        assert_eq!(
            harness.reloaded().sessions.get(&CLIENT),
            harness.state.sessions.get(&CLIENT)
        );
        harness.apply(&publish(7, vec![item("x", "1")], false));
        let later = 1_000 + SESSION_TTL_MS + 1;
        harness.apply(&ControlCommand::OpenSession {
            client: ClientId([9; 16]),
            now_ms: later,
        });
        assert_eq!(harness.state.session_count(), 1, "the idle session expired");
        let outcome = harness.apply(&write(
            8,
            later,
            Operation::Unpublish {
                name: DatasetName::parse("x").expect("valid"),
            },
        ));
        assert_eq!(error_of(outcome), CatalogError::SessionExpired);
        assert_eq!(harness.reloaded().session_count(), 1, "expiry is durable");
    }

    /// Garbage command bytes are an error outcome, not a panic.
    #[test]
    fn malformed_commands_are_refused() {
        let mut state = ControlState::default();
        let mut writes = StateWrites::default();
        let outcome = state.apply(ApplyContext { log_index: 1 }, &[0xff, 0x00, 0x13], &mut writes);
        let outcome: ControlOutcome = codec::decode("outcome", &outcome).expect("decodes");
        assert!(matches!(error_of(outcome), CatalogError::MalformedCommand { .. }));
    }
}
