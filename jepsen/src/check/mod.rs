//! The checkers.
//!
//! - [`linear`]: linearizability of every dataset name taken as a register
//!   (Wing–Gong–Lowe search, P-compositional per key, lists projected per key);
//! - [`stale`]: stale and phantom reads, explained in plain terms with times;
//! - [`durable`]: the final-phase reads against every acknowledged write;
//! - [`data`]: every persisted dataset read back with exactly its content, and
//!   every acknowledged one readable after the final heal;
//! - [`graph`]: every task graph's result as its shape implies, and every
//!   acknowledged graph's result read;
//! - [`counters`]: the scheduler's recovery counters against the worker faults;
//! - [`disk`]: a worker with a full disk refuses writes clearly, and takes them again.
//!
//! [`check_all`] runs the catalog's three on the catalog functions (with `put` and
//! `read` of persisted datasets projected onto `publish` and `get`), and each
//! data-plane checker whose operations the history holds. Each checker pairs invokes with completions by
//! process (an invoke never completed counts as `info`); anything malformed becomes a
//! `malformed-history` anomaly and makes the verdict at best `unknown`, never a panic
//! (except `durable` without final reads: it does not apply, and is `valid` with the
//! stat `skipped`).
//! Anomalies are listed at most [`MAX_ANOMALIES_PER_KIND`] per kind; the stats count
//! them all. Anomaly `ops` are history indexes: for each operation involved, its invoke
//! then its completion.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::history::{catalog_projection, Op, OpFn};

pub mod counters;
pub mod data;
pub mod disk;
pub mod durable;
pub mod graph;
pub mod linear;
pub(crate) mod paired;
pub(crate) mod plane;
pub mod stale;
pub mod verdict;

#[cfg(test)]
mod testing;

use verdict::{Anomaly, Validity, Verdict};

/// At most this many anomalies of one kind are listed in a verdict (the stats count all).
pub const MAX_ANOMALIES_PER_KIND: usize = 50;

/// How hard the checkers may work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// The linearizability search budget of one key (default 10 s): past it, that key is
    /// `unknown`.
    pub time_budget: Duration,
    /// The budget of the whole linearizability check (default 60 s): keys not decided by
    /// then are `unknown`.
    pub total_time_budget: Duration,
    /// The most configurations (linearized set, state) the search of one key may
    /// remember (default 1,000,000); past it, that key is `unknown` (bounds memory).
    pub max_configurations: usize,
    /// Threads searching keys in parallel; 0 = the machine's parallelism.
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            time_budget: Duration::from_secs(10),
            total_time_budget: Duration::from_secs(60),
            max_configurations: 1_000_000,
            threads: 0,
        }
    }
}

/// Runs the checkers: `linearizable`, `stale-read` and `durable` on the catalog
/// projection (unless the history holds only data-plane operations of other
/// kinds), then `data`, `graph`, `recovery-counters` and `full-disk` when the
/// history holds their operations, in that order.
pub fn check_all(history: &[Op], options: &CheckOptions) -> Vec<Verdict> {
    let has = |fns: &[OpFn]| history.iter().any(|op| fns.contains(&op.f));
    let catalog = catalog_projection(history);
    let mut verdicts = Vec::new();
    if !catalog.is_empty() || !history.iter().any(|op| !op.f.is_catalog()) {
        let paired = paired::pair(&catalog);
        verdicts.push(linear::check_paired(&paired, options));
        verdicts.push(stale::check_paired(&paired));
        verdicts.push(durable::check_paired(&paired));
    }
    if has(&[OpFn::Put, OpFn::Read]) {
        verdicts.push(data::check(history));
    }
    if has(&[OpFn::Submit, OpFn::Gather]) {
        verdicts.push(graph::check(history));
    }
    if has(&[OpFn::Status]) {
        verdicts.push(counters::check(history));
    }
    let full_disk = history
        .iter()
        .any(|op| op.f == OpFn::Nemesis && op.key.as_deref() == Some("full-disk"));
    if full_disk || has(&[OpFn::Probe]) {
        verdicts.push(disk::check(history));
    }
    verdicts
}

/// True iff every verdict is `valid`.
pub fn is_valid(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| v.validity == Validity::Valid)
}

/// Builds a verdict: `invalid` if any anomaly was found; else `unknown` if the checker
/// could not decide or the history is malformed; else `valid`. Lists at most
/// [`MAX_ANOMALIES_PER_KIND`] anomalies of each kind, then the malformations.
pub(crate) fn verdict(
    checker: &str,
    anomalies: Vec<Anomaly>,
    undecided: Vec<Anomaly>,
    malformed: &[Anomaly],
    mut stats: BTreeMap<String, u64>,
) -> Verdict {
    let validity = if !anomalies.is_empty() {
        Validity::Invalid
    } else if !undecided.is_empty() || !malformed.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut listed = Vec::new();
    for anomaly in anomalies.into_iter().chain(undecided).chain(malformed.iter().cloned()) {
        let count = per_kind.entry(anomaly.kind.clone()).or_default();
        *count += 1;
        if *count <= MAX_ANOMALIES_PER_KIND {
            listed.push(anomaly);
        }
    }
    if !malformed.is_empty() {
        stats.insert("malformed".to_string(), malformed.len() as u64);
    }
    Verdict {
        checker: checker.to_string(),
        validity,
        anomalies: listed,
        stats,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use super::testing::{synthetic, H};
    use super::*;
    use crate::history::{OpFn, OpType};

    #[test]
    fn check_all_on_a_small_valid_history() {
        let mut h = H::new();
        h.publish(1, "a", "1").get(2, "a", Some("1")).list(3, &["a"]);
        h.final_phase().list(9, &["a"]).get(9, "a", Some("1"));
        let verdicts = check_all(&h.history(), &CheckOptions::default());
        let names: Vec<&str> = verdicts.iter().map(|v| v.checker.as_str()).collect();
        assert_eq!(names, vec!["linearizable", "stale-read", "durable"]);
        assert!(is_valid(&verdicts), "{verdicts:#?}");
    }

    #[test]
    fn check_all_on_a_malformed_history_does_not_panic() {
        let mut h = H::new();
        h.ok(4); // a completion without invoke
        h.invoke(1, OpFn::Publish, "a", Some("1"));
        h.invoke(1, OpFn::Get, "a", None); // a second invoke by the same process
        h.ok_get(1, Some("1"));
        h.invoke(2, OpFn::Get, "b", None);
        let mut history = h.history();
        let mut mismatch = history[history.len() - 1].clone(); // does not match its invoke
        mismatch.index = 98;
        mismatch.kind = OpType::Ok;
        mismatch.key = Some("c".to_string());
        history.push(mismatch);
        history.push(crate::history::Op {
            index: 99,
            time_ns: 0, // before its invoke
            process: 3,
            kind: OpType::Invoke,
            f: OpFn::Override,
            key: None, // no key
            value: None,
            names: None,
            error: None,
            is_final: false,
            extra: Default::default(),
        });
        let verdicts = check_all(&history, &CheckOptions::default());
        assert!(!is_valid(&verdicts));
        // The durability checker does not apply (no final reads): it is skipped.
        for v in &verdicts[..2] {
            assert_eq!(v.validity, Validity::Unknown, "{v:#?}");
            assert!(v.anomalies.iter().any(|a| a.kind == "malformed-history"), "{v:#?}");
            assert_eq!(v.stats["malformed"], 5, "{v:#?}");
        }
        assert_eq!(verdicts[2].stats["skipped"], 1);
    }

    #[test]
    fn large_synthetic_history_is_checked_quickly() {
        let history = synthetic(200, 100, 10, 42);
        assert!(history.len() > 40_000, "{}", history.len()); // events: 20,000 operations
        let started = Instant::now();
        let verdicts = check_all(&history, &CheckOptions::default());
        let elapsed = started.elapsed();
        println!(
            "checked {} events in {elapsed:?}: {:#?}",
            history.len(),
            verdicts[0].stats
        );
        for v in &verdicts {
            assert_eq!(v.validity, Validity::Valid, "{:#?}", v);
        }
        assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    }

    /// Appends, at the end, a read of k0 returning the value of its first acknowledged
    /// publish/override that a later acknowledged write replaced (false if none).
    fn append_stale_read(history: &mut Vec<crate::history::Op>) -> bool {
        let ops = paired::pair(history).ops;
        let writes: Vec<&paired::Operation> = ops
            .iter()
            .filter(|o| o.key.as_deref() == Some("k0") && o.f.is_write() && o.outcome == paired::Outcome::Ok)
            .collect();
        let Some(old) = writes
            .iter()
            .find(|w| w.is_set() && writes.iter().any(|l| l.invoke_ns > w.complete_ns.unwrap()))
        else {
            return false;
        };
        let value = old.value.clone().unwrap();
        let end = history.last().unwrap().time_ns;
        for (i, kind) in [OpType::Invoke, OpType::Ok].into_iter().enumerate() {
            history.push(crate::history::Op {
                index: history.len() as u64,
                time_ns: end + 1_000_000 * (i as u64 + 1),
                process: 12345,
                kind,
                f: OpFn::Get,
                key: Some("k0".to_string()),
                value: (kind == OpType::Ok).then(|| value.clone()),
                names: None,
                error: None,
                is_final: false,
                extra: Default::default(),
            });
        }
        true
    }

    #[test]
    fn large_synthetic_history_with_a_stale_read() {
        let mut history = synthetic(50, 100, 10, 7);
        assert!(append_stale_read(&mut history));
        let verdicts = check_all(&history, &CheckOptions::default());
        assert_eq!(verdicts[0].validity, Validity::Invalid, "{:#?}", verdicts[0]);
        assert_eq!(verdicts[0].anomalies[0].key.as_deref(), Some("k0"));
        assert_eq!(verdicts[1].validity, Validity::Invalid, "{:#?}", verdicts[1]);
        assert!(!is_valid(&verdicts));
        println!(
            "{}\n{}",
            verdicts[0].anomalies[0].explanation, verdicts[1].anomalies[0].explanation
        );
    }

    /// Whether the whole history (all keys at once, lists as atomic reads of the whole
    /// catalog) has a valid order, by brute force.
    fn brute_force(history: &[crate::history::Op]) -> bool {
        use std::collections::BTreeMap;
        let ops: Vec<paired::Operation> = paired::pair(history)
            .ops
            .into_iter()
            .filter(|o| o.outcome != paired::Outcome::Fail && (o.f.is_write() || o.outcome == paired::Outcome::Ok))
            .collect();
        fn go(ops: &[paired::Operation], done: &mut Vec<bool>, state: &BTreeMap<String, String>) -> bool {
            if done.iter().all(|&d| d) {
                return true;
            }
            for i in 0..ops.len() {
                if done[i] || (0..ops.len()).any(|j| !done[j] && j != i && ops[j].end_or_max() < ops[i].invoke_ns) {
                    continue;
                }
                let o = &ops[i];
                let key = o.key.clone().unwrap_or_default();
                let certain = o.outcome == paired::Outcome::Ok;
                let mut next = state.clone();
                let allowed = match o.f {
                    OpFn::Publish => {
                        if !state.contains_key(&key) {
                            next.insert(key, o.value.clone().unwrap());
                            true
                        } else {
                            !certain
                        }
                    }
                    OpFn::Override => {
                        next.insert(key, o.value.clone().unwrap());
                        true
                    }
                    OpFn::Unpublish => next.remove(&key).is_some() || !certain,
                    OpFn::Get => state.get(&key) == o.value.as_ref(),
                    OpFn::List => {
                        let mut names = o.names.clone().unwrap();
                        names.sort();
                        names == state.keys().cloned().collect::<Vec<_>>()
                    }
                    other => unreachable!("the synthetic histories have no {other:?}"),
                };
                if allowed {
                    done[i] = true;
                    if go(ops, done, &next) {
                        return true;
                    }
                    done[i] = false;
                }
            }
            false
        }
        go(&ops, &mut vec![false; ops.len()], &BTreeMap::new())
    }

    fn show(history: &[crate::history::Op]) -> String {
        let lines: Vec<String> = history
            .iter()
            .map(|o| {
                let (i, t, p, k, f) = (o.index, o.time_ns / 1000, o.process, o.kind, o.f);
                format!(
                    "{i} t={t}us p{p} {k:?} {f:?} {:?} {:?} {:?} final={}",
                    o.key, o.value, o.names, o.is_final
                )
            })
            .collect();
        lines.join("\n")
    }

    #[test]
    fn linear_agrees_with_brute_force_on_small_histories() {
        let mut rng = super::testing::Rng::new(11);
        let (mut valid, mut invalid) = (0, 0);
        let mut detected = [0usize; 2];
        let mut exact_cases = 0;
        let seeds: u64 = std::env::var("SEEDS").map_or(1000, |r| r.parse().unwrap());
        let per_key: usize = std::env::var("PER_KEY").map_or(3, |r| r.parse().unwrap());
        for seed in 1..seeds {
            let mut history = super::testing::synthetic_with(3, per_key, 3, 3, 25, 3, seed);
            // Corrupt one completion half of the time.
            if rng.below(2) == 0 {
                let completions: Vec<usize> = (0..history.len())
                    .filter(|&i| history[i].kind != OpType::Invoke)
                    .collect();
                let i = completions[rng.below(completions.len() as u64) as usize];
                let op = &mut history[i];
                match (op.f, rng.below(3)) {
                    (OpFn::Get, 0) => op.value = None,
                    (OpFn::Get, _) => op.value = Some(format!("{}-{}", rng.below(3), rng.below(9))),
                    (OpFn::List, _) => {
                        let names = op.names.as_mut().unwrap();
                        match names.pop() {
                            Some(_) if rng.below(2) == 0 => {}
                            _ => names.push(format!("k{}", rng.below(3))),
                        }
                        names.sort();
                        names.dedup();
                    }
                    (_, 0) if op.kind == OpType::Ok => op.kind = OpType::Fail,
                    (_, _) if op.kind == OpType::Fail => op.kind = OpType::Ok,
                    _ => op.kind = OpType::Info,
                }
            }
            let expected = brute_force(&history);
            let verdict = linear::check(&history, &CheckOptions::default());
            let got = match verdict.validity {
                Validity::Valid => true,
                Validity::Invalid => false,
                Validity::Unknown => panic!("{verdict:#?}"),
            };
            // A list reads several names at once, so checking each name apart is exact
            // only without lists concurrent with other operations (the final list
            // follows everything); with them it is sound: it never reports a valid history.
            let exact = !history.iter().any(|o| o.f == OpFn::List && !o.is_final);
            if exact {
                assert_eq!(got, expected, "{}\n{verdict:#?}", show(&history));
                exact_cases += 1;
            } else {
                assert!(!expected || got, "{}\n{verdict:#?}", show(&history));
            }
            // The other checkers are sound: they only report what is not linearizable.
            for other in [stale::check(&history), durable::check(&history)] {
                let sound = !expected || other.validity != Validity::Invalid;
                assert!(sound, "{}\n{other:#?}", show(&history));
                detected[usize::from(other.checker == "durable")] += usize::from(other.validity == Validity::Invalid);
            }
            if got {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(valid > 200 && invalid > 200, "{valid} {invalid}");
        assert!(detected[0] > 20 && detected[1] > 20, "{detected:?}");
        assert!(exact_cases > 300, "{exact_cases}");
    }

    /// A measurement, not a test: `cargo test --workspace --lib -- check::tests::measure --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure() {
        let cases = [
            (200, 100, 3, 3),
            (200, 100, 1, 3),
            (200, 100, 1, 10),
            (20, 1000, 1, 3),
            (200, 100, 1, 20),
            (20000, 1, 2, 10),
        ];
        for (keys, per_key, active, info) in cases {
            for stale in [false, true] {
                let seed = std::env::var("SEED").map_or(1, |s| s.parse().unwrap());
                let mut history = super::testing::synthetic_with(keys, per_key, 10, active, info, 3, seed);
                if stale && !append_stale_read(&mut history) {
                    continue;
                }
                let started = Instant::now();
                let verdicts = check_all(&history, &CheckOptions::default());
                println!(
                    "{keys} keys x {per_key} ops, {active} active, {info}% info{}: {:?} {:?} {:?}",
                    if stale { ", stale read" } else { "" },
                    started.elapsed(),
                    verdicts.iter().map(|v| v.validity).collect::<Vec<_>>(),
                    verdicts[0].stats
                );
            }
        }
    }
}
