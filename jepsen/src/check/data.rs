//! The `data` checker: every persisted dataset read back with exactly its content.
//!
//! Each `put` records the dataset's generator parameters ([`DataSpec`]) and the
//! content they give; the checker generates that content again from the
//! parameters alone ([`crate::content::expected`]) and then judges every read:
//!
//! - a read that returned rows must return exactly the put's content: fewer rows
//!   is `partial-read`, anything else that differs (a value, the order, the chunk
//!   count, the schema) is `corrupt-read`; rows of a name nobody put are
//!   `phantom-dataset`;
//! - a read that errored (a worker unreachable during a fault) is no anomaly, and
//!   "not found" is the catalog checkers' business (`durable`, `linearizable`);
//! - after the final heal, every acknowledged put must be read back whole by a
//!   final read: a dataset whose final reads all failed (or that was never read)
//!   is `lost`; a put of unknown outcome must be answered one way or the other
//!   (`unreadable` otherwise).
//!
//! A put whose recorded content does not match its parameters is
//! `inconsistent-history` (the verdict is then at best unknown).

use std::collections::BTreeMap;

use crate::content;
use crate::history::{Content, Op, OpFn};

use super::paired::Outcome;
use super::plane::{self, PlaneOp};
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "data";

fn anomaly(kind: &str, key: &str, explanation: String, ops: &[PlaneOp<'_>]) -> Anomaly {
    Anomaly {
        kind: kind.to_string(),
        key: Some(key.to_string()),
        explanation,
        ops: ops.iter().flat_map(PlaneOp::indexes).collect(),
    }
}

pub(crate) fn bump(stats: &mut BTreeMap<String, u64>, name: &str) {
    *stats.entry(name.to_string()).or_default() += 1;
}

/// Counts an operation's outcome as `<noun>_ok`, `<noun>_failed` or `<noun>_unknown`.
pub(crate) fn bump_outcome(stats: &mut BTreeMap<String, u64>, noun: &str, outcome: Outcome) {
    let suffix = match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "failed",
        Outcome::Info => "unknown",
    };
    bump(stats, &format!("{noun}_{suffix}"));
}

fn describe(content: &Content) -> String {
    format!(
        "{} rows in {} chunks (fnv {})",
        content.rows, content.chunks, content.checksum
    )
}

/// Checks the data workload's puts and reads (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    let (ops, malformed) = plane::pair(history, &[OpFn::Put, OpFn::Read]);
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();

    // The puts, by name, with the content each must read back as.
    let mut puts: BTreeMap<&str, (PlaneOp<'_>, Content)> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.invoke.f == OpFn::Put) {
        bump(&mut stats, "puts");
        bump_outcome(&mut stats, "puts", op.outcome());
        let Some(spec) = &op.invoke.extra.data else {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!("{} records no dataset parameters", op.describe()),
                &[*op],
            ));
            continue;
        };
        if spec.source.is_some() {
            bump(&mut stats, "derived_puts");
            if op.outcome() == Outcome::Ok {
                bump(&mut stats, "derived_puts_ok");
            }
        }
        let expected = content::expected(spec);
        let recorded_ok = op.invoke.extra.content.as_ref() == Some(&expected)
            && op.invoke.value.as_deref() == Some(expected.label().as_str());
        if !recorded_ok {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!(
                    "{} records content {:?} but its parameters give {}",
                    op.describe(),
                    op.invoke.extra.content,
                    describe(&expected)
                ),
                &[*op],
            ));
        }
        if puts.insert(op.key(), (*op, expected)).is_some() {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!("{} puts a name put before (names must be fresh)", op.describe()),
                &[*op],
            ));
        }
    }

    // Every read that returned rows, against its put.
    let mut final_reads: BTreeMap<&str, Vec<PlaneOp<'_>>> = BTreeMap::new();
    // The final phase ran if anything is marked final (its reads, or the status
    // sample taken after it).
    let any_final = history.iter().any(|op| op.is_final);
    for op in ops.iter().filter(|op| op.invoke.f == OpFn::Read) {
        bump(&mut stats, "reads");
        if op.is_final() {
            final_reads.entry(op.key()).or_default().push(*op);
        }
        match op.outcome() {
            Outcome::Ok => {}
            _ => {
                bump(&mut stats, "reads_failed");
                continue;
            }
        }
        let Some(read) = op.completion.and_then(|completion| completion.extra.content.as_ref()) else {
            bump(&mut stats, "reads_absent");
            continue;
        };
        bump(&mut stats, "reads_ok");
        let Some((put, expected)) = puts.get(op.key()) else {
            anomalies.push(anomaly(
                "phantom-dataset",
                op.key(),
                format!(
                    "{} returned {}, but no put wrote that name",
                    op.describe(),
                    describe(read)
                ),
                &[*op],
            ));
            continue;
        };
        if read == expected {
            *stats.entry("rows_verified".to_string()).or_default() += read.rows;
            continue;
        }
        let kind = if read.rows < expected.rows {
            "partial-read"
        } else {
            "corrupt-read"
        };
        anomalies.push(anomaly(
            kind,
            op.key(),
            format!(
                "{} returned {}, but {} wrote {}",
                op.describe(),
                describe(read),
                put.describe(),
                describe(expected)
            ),
            &[*op, *put],
        ));
    }

    // After the final heal: every acknowledged put read back whole.
    if any_final {
        for (name, (put, expected)) in &puts {
            if put.outcome() == Outcome::Fail {
                continue;
            }
            let reads = final_reads.get(name).map(Vec::as_slice).unwrap_or_default();
            let answered = reads.iter().rev().find(|read| read.outcome() == Outcome::Ok);
            match (answered, put.outcome()) {
                (Some(read), _) => {
                    let content = read.completion.and_then(|completion| completion.extra.content.as_ref());
                    if content == Some(expected) {
                        bump(&mut stats, "final_verified");
                    }
                    // An absent acknowledged dataset is the durable checker's
                    // lost-write; a wrong content was reported above.
                }
                (None, Outcome::Ok) => {
                    let last_error = reads
                        .iter()
                        .rev()
                        .find_map(|read| read.completion.and_then(|completion| completion.error.clone()))
                        .unwrap_or_else(|| "it was never read".to_string());
                    let mut involved = vec![*put];
                    involved.extend(reads.iter().rev().take(3));
                    anomalies.push(anomaly(
                        "lost",
                        name,
                        format!(
                            "{} was acknowledged ({}), but after the final heal no read of it succeeded ({} tried; last: {last_error})",
                            put.describe(),
                            describe(expected),
                            reads.len()
                        ),
                        &involved,
                    ));
                }
                (None, _) => {
                    let mut involved = vec![*put];
                    involved.extend(reads.iter().rev().take(3));
                    anomalies.push(anomaly(
                        "unreadable",
                        name,
                        format!(
                            "{} may have happened, and after the final heal the cluster neither served it nor said \
                             it does not exist ({} reads tried)",
                            put.describe(),
                            reads.len()
                        ),
                        &involved,
                    ));
                }
            }
        }
    } else {
        stats.insert("final_skipped".to_string(), 1);
    }
    for kind in ["partial-read", "corrupt-read", "phantom-dataset", "lost", "unreadable"] {
        let n = anomalies.iter().filter(|a| a.kind == kind).count() as u64;
        stats.insert(kind.replace('-', "_"), n);
    }
    super::verdict(CHECKER, anomalies, undecided, &malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::verdict::Validity;
    use crate::history::{DataSpec, Extra, OpType};

    fn spec(seed: u64) -> DataSpec {
        DataSpec {
            seed,
            chunks: 2,
            rows_per_chunk: 10,
            plus: 0,
            replicas: 2,
            source: None,
        }
    }

    struct B(Vec<Op>);

    impl B {
        #[allow(clippy::too_many_arguments)]
        fn push(
            &mut self,
            process: u64,
            kind: OpType,
            f: OpFn,
            key: &str,
            value: Option<String>,
            extra: Extra,
            final_: bool,
        ) {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                time_ns: (index + 1) * 1_000_000,
                process,
                kind,
                f,
                key: Some(key.to_string()),
                value,
                names: None,
                error: (kind == OpType::Fail).then(|| "unreachable".to_string()),
                is_final: final_,
                extra,
            });
        }

        fn put(&mut self, process: u64, name: &str, spec: &DataSpec, outcome: OpType) -> &mut Self {
            let expected = content::expected(spec);
            let extra = Extra {
                data: Some(spec.clone()),
                content: Some(expected.clone()),
                ..Extra::default()
            };
            self.push(
                process,
                OpType::Invoke,
                OpFn::Put,
                name,
                Some(expected.label()),
                extra,
                false,
            );
            self.push(
                process,
                outcome,
                OpFn::Put,
                name,
                Some(expected.label()),
                Extra::default(),
                false,
            );
            self
        }

        fn read(&mut self, process: u64, name: &str, read: Option<Option<Content>>, final_: bool) -> &mut Self {
            self.push(
                process,
                OpType::Invoke,
                OpFn::Read,
                name,
                None,
                Extra::default(),
                final_,
            );
            match read {
                Some(content) => {
                    let value = content.as_ref().map(Content::label);
                    let extra = Extra {
                        content,
                        ..Extra::default()
                    };
                    self.push(process, OpType::Ok, OpFn::Read, name, value, extra, final_)
                }
                None => self.push(process, OpType::Fail, OpFn::Read, name, None, Extra::default(), final_),
            }
            self
        }
    }

    fn kinds(history: &[Op]) -> (Validity, Vec<String>) {
        let verdict = check(history);
        for a in &verdict.anomalies {
            println!("{}: {}", a.kind, a.explanation);
        }
        (
            verdict.validity,
            verdict.anomalies.iter().map(|a| a.kind.clone()).collect(),
        )
    }

    #[test]
    fn exact_reads_and_clean_errors_are_valid() {
        let mut b = B(Vec::new());
        let good = Some(content::expected(&spec(1)));
        b.put(1, "a", &spec(1), OpType::Ok)
            .read(2, "a", None, false)
            .read(2, "a", Some(good.clone()), false);
        b.put(1, "b", &spec(2), OpType::Info)
            .read(9, "a", None, true)
            .read(9, "a", Some(good), true);
        b.read(9, "b", Some(None), true);
        assert_eq!(kinds(&b.0), (Validity::Valid, vec![]));
        assert_eq!(check(&b.0).stats["final_verified"], 1);
    }

    #[test]
    fn partial_and_corrupt_reads_are_anomalies() {
        let mut b = B(Vec::new());
        let expected = content::expected(&spec(1));
        let partial = Content {
            rows: 10,
            chunks: 1,
            ..expected.clone()
        };
        let corrupt = Content {
            checksum: "0000000000000000".to_string(),
            ..expected.clone()
        };
        b.put(1, "a", &spec(1), OpType::Ok)
            .read(2, "a", Some(Some(partial)), false);
        b.read(2, "a", Some(Some(corrupt)), false);
        b.read(2, "zz", Some(Some(expected)), false);
        let (validity, kinds) = kinds(&b.0);
        assert_eq!(validity, Validity::Invalid);
        assert_eq!(kinds, vec!["partial-read", "corrupt-read", "phantom-dataset"]);
    }

    #[test]
    fn an_acknowledged_dataset_unreadable_after_the_heal_is_lost() {
        let mut b = B(Vec::new());
        b.put(1, "a", &spec(1), OpType::Ok).put(1, "b", &spec(2), OpType::Info);
        b.put(1, "c", &spec(3), OpType::Fail);
        b.read(9, "a", None, true)
            .read(9, "a", None, true)
            .read(9, "b", None, true);
        assert_eq!(
            kinds(&b.0),
            (Validity::Invalid, vec!["lost".to_string(), "unreadable".to_string()])
        );
    }

    #[test]
    fn a_put_whose_content_does_not_match_its_parameters_is_undecided() {
        let mut b = B(Vec::new());
        b.put(1, "a", &spec(1), OpType::Ok);
        b.0[0].extra.content = Some(content::expected(&spec(2)));
        let (validity, kinds) = kinds(&b.0);
        assert_eq!(validity, Validity::Unknown);
        assert_eq!(kinds, vec!["inconsistent-history"]);
    }
}
