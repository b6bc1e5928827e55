//! Durability: the reads of the final phase (after every fault has healed) against
//! every write.
//!
//! For a final read R and a name k, the states R may see are computed generously (a
//! superset of what any linearization allows), so every report is real: the writes of
//! k that may precede R are those that did not fail and were invoked before R
//! completed; such a write w may be the last one before R unless an acknowledged write
//! of k was invoked after w completed and completed before R was invoked (an unknown w
//! may take effect at any time, so it may always be last). R may see:
//! - the value of any publish/override that may be last;
//! - absent, if an unpublish may be last, or if no acknowledged publish/override of k
//!   completed before R was invoked.
//!
//! The last `ok` final list is checked for every name written or listed, every `ok`
//! final get for its name. Kinds: `lost-write` (an acknowledged write is missing, or an
//! acknowledged unpublish was undone), `phantom` (a name or value present at the end
//! whose every write failed, or that nobody wrote), `unexpected-value` (a value never
//! written to that name), `duplicate` (a name listed twice).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::history::{Op, OpFn};

use super::paired::{self, quote, Operation, Outcome, Paired};
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "durable";

/// Checks the final reads against the writes (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    check_paired(&paired::pair(history))
}

/// What a final read of one name may see.
#[derive(Debug, Default)]
struct Possible {
    /// Publishes/overrides that may be the last write before the read.
    last_sets: Vec<usize>,
    /// Whether the name may be absent.
    absent: bool,
}

impl Possible {
    fn new(paired: &Paired, writes: &[usize], read: &Operation) -> Possible {
        let read_end = read.end_or_max();
        // The latest invoke of an acknowledged write definitely before the read.
        let mut latest_before: Option<u64> = None;
        let mut set_before = false;
        for &w in writes {
            let op = &paired.ops[w];
            if op.outcome == Outcome::Ok && op.complete_ns.is_some_and(|c| c < read.invoke_ns) {
                latest_before = Some(latest_before.map_or(op.invoke_ns, |l| l.max(op.invoke_ns)));
                set_before |= op.is_set();
            }
        }
        let mut possible = Possible {
            last_sets: Vec::new(),
            absent: !set_before,
        };
        for &w in writes {
            let op = &paired.ops[w];
            if op.outcome == Outcome::Fail || op.invoke_ns > read_end {
                continue;
            }
            if latest_before.is_some_and(|l| l > op.end_or_max()) {
                continue;
            }
            if op.is_set() {
                possible.last_sets.push(w);
            } else {
                possible.absent = true;
            }
        }
        possible
    }

    fn allows(&self, paired: &Paired, value: &str) -> Option<usize> {
        self.last_sets
            .iter()
            .copied()
            .find(|&w| paired.ops[w].value.as_deref() == Some(value))
    }

    fn describe(&self, paired: &Paired) -> String {
        let mut out: Vec<String> = self
            .last_sets
            .iter()
            .take(4)
            .map(|&w| {
                format!(
                    "{} (by {})",
                    quote(paired.ops[w].value.as_deref()),
                    paired.ops[w].describe()
                )
            })
            .collect();
        if self.last_sets.len() > 4 {
            out.push(format!("{} more values", self.last_sets.len() - 4));
        }
        if self.absent {
            out.push("absent".to_string());
        }
        out.join(" or ")
    }
}

struct Checker<'a> {
    paired: &'a Paired,
    /// Name → its writes (publish, override, unpublish; any outcome).
    writes: BTreeMap<&'a str, Vec<usize>>,
    anomalies: Vec<Anomaly>,
    /// Final reads that missed an acknowledged write (a name read by both the final
    /// list and a final get counts twice).
    lost: u64,
    /// Names with at least one lost write.
    lost_keys: BTreeSet<String>,
    /// Unknown publishes/overrides shown applied by a final read.
    recovered: HashSet<usize>,
}

impl Checker<'_> {
    fn report(&mut self, kind: &str, key: &str, explanation: String, ops: &[usize]) {
        if kind == "lost-write" {
            self.lost += 1;
            self.lost_keys.insert(key.to_string());
        }
        let ops = ops.iter().flat_map(|&i| self.paired.ops[i].indexes()).collect();
        self.anomalies.push(Anomaly {
            kind: kind.to_string(),
            key: Some(key.to_string()),
            explanation,
            ops,
        });
    }

    /// The final read `read` saw `key` absent.
    fn absent(&mut self, key: &str, read: usize, what: &str) {
        let paired = self.paired;
        let writes = self.writes.get(key).cloned().unwrap_or_default();
        let possible = Possible::new(paired, &writes, &paired.ops[read]);
        if possible.absent {
            return;
        }
        let explanation = format!(
            "{what} found {key:?} absent, but an acknowledged write left it published and no unpublish could have \
             removed it: it could only be {}",
            possible.describe(paired)
        );
        let mut ops = vec![read];
        ops.extend(possible.last_sets.iter().take(4));
        self.report("lost-write", key, explanation, &ops);
    }

    /// The final read `read` saw `key` present, with `value` if it is a get.
    fn present(&mut self, key: &str, read: usize, value: Option<&str>, what: &str) {
        let paired = self.paired;
        let writes = self.writes.get(key).cloned().unwrap_or_default();
        let sets: Vec<usize> = writes.iter().copied().filter(|&w| paired.ops[w].is_set()).collect();
        let live: Vec<usize> = sets
            .iter()
            .copied()
            .filter(|&w| paired.ops[w].outcome != Outcome::Fail)
            .collect();
        let shown = match value {
            Some(v) => format!("{what} read {v:?} for {key:?}"),
            None => format!("{what} included {key:?}"),
        };
        if sets.is_empty() {
            self.report(
                "phantom",
                key,
                format!("{shown}, but no operation ever published it"),
                &[read],
            );
            return;
        }
        let written: Vec<usize> = match value {
            Some(v) => sets
                .iter()
                .copied()
                .filter(|&w| paired.ops[w].value.as_deref() == Some(v))
                .collect(),
            None => sets.clone(),
        };
        if written.is_empty() {
            let explanation = format!("{shown}, but no publish or override of {key:?} wrote that value");
            self.report("unexpected-value", key, explanation, &[read]);
            return;
        }
        if written.iter().all(|&w| paired.ops[w].outcome == Outcome::Fail) {
            let explanation = format!(
                "{shown}, but {} failed: a write that definitely did not happen is visible",
                if written.len() == 1 {
                    paired.ops[written[0]].describe()
                } else {
                    "every write of it".to_string()
                }
            );
            let mut ops = vec![read];
            ops.extend(written.iter().take(4));
            self.report("phantom", key, explanation, &ops);
            return;
        }
        let possible = Possible::new(paired, &writes, &paired.ops[read]);
        let applied = match value {
            Some(v) => possible.allows(paired, v),
            None => possible.last_sets.first().copied(),
        };
        if applied.is_some() {
            // An unknown write is shown applied when it is the only one that could be.
            if let Some(v) = value {
                let writers: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&w| paired.ops[w].value.as_deref() == Some(v))
                    .collect();
                if let [w] = writers[..] {
                    if paired.ops[w].outcome == Outcome::Info {
                        self.recovered.insert(w);
                    }
                }
            } else if let [w] = live[..] {
                if paired.ops[w].outcome == Outcome::Info {
                    self.recovered.insert(w);
                }
            }
            return;
        }
        let explanation = match value {
            Some(_) => format!(
                "{shown}, but an acknowledged later write replaced that value (the later write was lost): \
                 it could only be {}",
                possible.describe(paired)
            ),
            None => format!(
                "{shown}, but an acknowledged unpublish removed it and no publish could have restored it \
                 (the unpublish was lost): it could only be {}",
                possible.describe(paired)
            ),
        };
        let mut ops = vec![read];
        ops.extend(written.iter().take(2));
        self.report("lost-write", key, explanation, &ops);
    }
}

/// [`check`] on an already paired history.
pub(crate) fn check_paired(paired: &Paired) -> Verdict {
    let mut writes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut final_gets = Vec::new();
    let mut final_list: Option<usize> = None;
    let (mut acknowledged, mut failed, mut unknown) = (0u64, 0u64, 0u64);
    for (i, op) in paired.ops.iter().enumerate() {
        if !op.usable {
            continue;
        }
        match (op.f, op.key.as_deref()) {
            (OpFn::List, _) if op.is_final && op.outcome == Outcome::Ok && op.names.is_some() => {
                let later = final_list.is_none_or(|l| paired.ops[l].complete_ns <= op.complete_ns);
                if later {
                    final_list = Some(i);
                }
            }
            (OpFn::Get, Some(_)) if op.is_final && op.outcome == Outcome::Ok => final_gets.push(i),
            (OpFn::List | OpFn::Get, _) => {}
            (f, Some(key)) => {
                writes.entry(key).or_default().push(i);
                if f != OpFn::Unpublish {
                    match op.outcome {
                        Outcome::Ok => acknowledged += 1,
                        Outcome::Fail => failed += 1,
                        Outcome::Info => unknown += 1,
                    }
                }
            }
            _ => {}
        }
    }
    let mut stats = BTreeMap::new();
    stats.insert("acknowledged".to_string(), acknowledged);
    stats.insert("failed".to_string(), failed);
    stats.insert("unknown".to_string(), unknown);
    let final_reads = final_gets.len() + usize::from(final_list.is_some());
    stats.insert("final_reads".to_string(), final_reads as u64);
    if final_reads == 0 {
        stats.insert("skipped".to_string(), 1);
        return super::verdict(CHECKER, Vec::new(), Vec::new(), &[], stats);
    }
    let mut checker = Checker {
        paired,
        writes,
        anomalies: Vec::new(),
        lost: 0,
        lost_keys: BTreeSet::new(),
        recovered: HashSet::new(),
    };
    let mut present_at_end: BTreeSet<&str> = BTreeSet::new();
    if let Some(l) = final_list {
        let list = &paired.ops[l];
        let what = format!("the final {}", list.describe());
        let names: Vec<&str> = list.names.iter().flatten().map(String::as_str).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for &name in &names {
            *counts.entry(name).or_default() += 1;
        }
        let mut keys: BTreeSet<&str> = checker.writes.keys().copied().collect();
        keys.extend(names.iter().copied());
        for key in keys {
            match counts.get(key) {
                Some(&count) => {
                    present_at_end.insert(key);
                    if count > 1 {
                        let explanation = format!("{what} lists {key:?} {count} times");
                        checker.report("duplicate", key, explanation, &[l]);
                    }
                    checker.present(key, l, None, &what);
                }
                None => checker.absent(key, l, &what),
            }
        }
    }
    for &g in &final_gets {
        let get = &paired.ops[g];
        let Some(key) = get.key.as_deref() else { continue };
        let what = format!("the final {}", get.describe());
        match get.value.as_deref() {
            Some(value) => {
                if final_list.is_none() {
                    present_at_end.insert(key);
                }
                checker.present(key, g, Some(value), &what);
            }
            None => checker.absent(key, g, &what),
        }
    }
    stats.insert("keys".to_string(), checker.writes.len() as u64);
    stats.insert("present_at_end".to_string(), present_at_end.len() as u64);
    stats.insert("lost".to_string(), checker.lost);
    stats.insert("lost_keys".to_string(), checker.lost_keys.len() as u64);
    for kind in ["phantom", "unexpected-value", "duplicate"] {
        let count = checker.anomalies.iter().filter(|a| a.kind == kind).count();
        stats.insert(kind.replace('-', "_"), count as u64);
    }
    stats.insert("recovered_unknown".to_string(), checker.recovered.len() as u64);
    super::verdict(CHECKER, checker.anomalies, Vec::new(), &paired.malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::testing::H;
    use crate::check::verdict::Validity;
    use crate::history::OpFn::*;

    fn verdict(h: &H) -> Verdict {
        let v = check(&h.history());
        for a in &v.anomalies {
            println!("{}: {}", a.kind, a.explanation);
        }
        v
    }

    fn kinds(v: &Verdict) -> Vec<&str> {
        v.anomalies.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn skipped_without_final_reads() {
        let mut h = H::new();
        h.publish(1, "k", "a").get(1, "k", None);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Valid);
        assert_eq!(v.stats["skipped"], 1);
        assert_eq!(v.stats["final_reads"], 0);
    }

    #[test]
    fn all_acknowledged_writes_present() {
        let mut h = H::new();
        h.publish(1, "a", "1")
            .publish(2, "b", "2")
            .publish(1, "c", "3")
            .unpublish(1, "c");
        h.final_phase()
            .list(9, &["a", "b"])
            .get(9, "a", Some("1"))
            .get(9, "c", None);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Valid);
        assert_eq!(v.stats["acknowledged"], 3);
        assert_eq!(v.stats["present_at_end"], 2);
    }

    #[test]
    fn lost_acknowledged_write() {
        let mut h = H::new();
        h.publish(1, "a", "1").publish(2, "b", "2");
        h.final_phase().list(9, &["a"]).get(9, "b", None);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Invalid);
        assert_eq!(kinds(&v), vec!["lost-write", "lost-write"]);
        assert_eq!(v.stats["lost"], 2);
        assert_eq!(v.stats["lost_keys"], 1);
    }

    #[test]
    fn failed_write_that_appears_is_a_phantom() {
        let mut h = H::new();
        h.invoke(1, Publish, "a", Some("1")).fail(1);
        h.final_phase().list(9, &["a", "zz"]).get(9, "a", Some("1"));
        let v = verdict(&h);
        assert_eq!(kinds(&v), vec!["phantom", "phantom", "phantom"]);
    }

    #[test]
    fn unexpected_value_and_older_value() {
        let mut h = H::new();
        h.publish(1, "a", "1").override_(1, "a", "2");
        h.final_phase()
            .get(9, "a", Some("x"))
            .get(9, "a", Some("1"))
            .get(9, "a", Some("2"));
        let v = verdict(&h);
        assert_eq!(kinds(&v), vec!["unexpected-value", "lost-write"]);
    }

    #[test]
    fn duplicate_names() {
        let mut h = H::new();
        h.publish(1, "a", "1");
        h.final_phase().list(9, &["a", "a"]);
        let v = verdict(&h);
        assert_eq!(kinds(&v), vec!["duplicate"]);
    }

    #[test]
    fn unknown_write_present_or_absent_is_fine() {
        let mut h = H::new();
        h.invoke(1, Publish, "a", Some("1")).info(1);
        h.invoke(2, Publish, "b", Some("2")).info(2);
        h.invoke(3, Publish, "c", Some("3")); // never completes
        h.final_phase().list(9, &["a"]).get(9, "a", Some("1")).get(9, "b", None);
        let v = verdict(&h);
        assert_eq!(v.validity, Validity::Valid);
        assert_eq!(v.stats["unknown"], 3);
        assert_eq!(v.stats["recovered_unknown"], 1);
    }

    #[test]
    fn unknown_unpublish_may_remove() {
        let mut h = H::new();
        h.publish(1, "a", "1");
        h.invoke(2, Unpublish, "a", None).info(2);
        h.publish(1, "b", "2").unpublish(1, "b");
        h.final_phase().list(9, &[]);
        assert_eq!(verdict(&h).validity, Validity::Valid);
        let mut h = H::new();
        h.publish(1, "b", "2").unpublish(1, "b");
        h.final_phase().list(9, &["b"]);
        assert_eq!(kinds(&verdict(&h)), vec!["lost-write"]);
    }
}
