//! Stale and phantom reads, explained in plain terms.
//!
//! Linearizability says *that* a key's history is wrong; this checker says the most
//! common *why* with times. Every rule below only uses real-time order (A before B when
//! A completed strictly before B was invoked) and the meaning of `ok`/`fail`/`info`, so
//! every report is a real violation of linearizability:
//!
//! - a get returned `v`, written by `w1`, but another acknowledged write `w2` (publish,
//!   override or unpublish) was invoked after `w1` completed and completed before the
//!   get was invoked: `w2` replaced `v` (values are unique per write) before the get
//!   began (`stale-read`);
//! - a get found the name absent, yet an acknowledged publish/override `w` completed
//!   before the get was invoked and no unpublish that did not fail overlaps the span from
//!   `w`'s invoke to the get's completion, so none could have removed the value in
//!   between (`stale-read`);
//! - the same two rules for every `ok` list, projected on each name (present or not);
//! - a get returned a value that no publish/override of that name wrote, or only one
//!   that failed; a list included a name nobody published (`phantom-read`).

use std::collections::{BTreeMap, HashMap};

use crate::history::{Op, OpFn};

use super::paired::{self, ms, quote, Operation, Outcome, Paired};
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "stale-read";

/// Checks for stale and phantom reads (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    check_paired(&paired::pair(history))
}

/// Answers two questions about a set of operations quickly (by binary search).
#[derive(Debug, Default)]
struct Timeline {
    /// Acknowledged ops sorted by completion: (completion, max invoke so far, its op).
    by_completion: Vec<(u64, u64, usize)>,
    /// Ops that did not fail sorted by invoke: (invoke, max end so far, its op; +∞ = `u64::MAX`).
    by_invoke: Vec<(u64, u64, usize)>,
}

impl Timeline {
    fn new(paired: &Paired, ops: &[usize]) -> Self {
        let mut done: Vec<(u64, u64, usize)> = ops
            .iter()
            .filter(|&&i| paired.ops[i].outcome == Outcome::Ok)
            .map(|&i| {
                (
                    paired.ops[i].complete_ns.unwrap_or(u64::MAX),
                    paired.ops[i].invoke_ns,
                    i,
                )
            })
            .collect();
        done.sort_unstable();
        let mut best = (0, usize::MAX);
        for entry in &mut done {
            if best.1 == usize::MAX || entry.1 > best.0 {
                best = (entry.1, entry.2);
            }
            (entry.1, entry.2) = best;
        }
        let mut live: Vec<(u64, u64, usize)> = ops
            .iter()
            .filter(|&&i| paired.ops[i].outcome != Outcome::Fail)
            .map(|&i| (paired.ops[i].invoke_ns, paired.ops[i].end_or_max(), i))
            .collect();
        live.sort_unstable();
        let mut best = (0, usize::MAX);
        for entry in &mut live {
            if best.1 == usize::MAX || entry.1 > best.0 {
                best = (entry.1, entry.2);
            }
            (entry.1, entry.2) = best;
        }
        Timeline {
            by_completion: done,
            by_invoke: live,
        }
    }

    /// Of the acknowledged ops that completed strictly before `t`, the one invoked last.
    fn latest_completed_before(&self, t: u64) -> Option<usize> {
        let n = self.by_completion.partition_point(|e| e.0 < t);
        n.checked_sub(1).map(|last| self.by_completion[last].2)
    }

    /// An op that did not fail, invoked no later than `until` and not over before `since`
    /// (so it may have taken effect within `[since, until]`).
    fn overlapping(&self, since: u64, until: u64) -> Option<usize> {
        let n = self.by_invoke.partition_point(|e| e.0 <= until);
        let last = n.checked_sub(1)?;
        (self.by_invoke[last].1 >= since).then_some(self.by_invoke[last].2)
    }
}

/// What one name's writes look like.
#[derive(Debug, Default)]
struct KeyWrites<'a> {
    /// Publishes and overrides (any outcome).
    sets: Vec<usize>,
    /// Unpublishes (any outcome).
    unpublishes: Vec<usize>,
    /// Value → the publishes/overrides that wrote it.
    by_value: HashMap<&'a str, Vec<usize>>,
    set_timeline: Timeline,
    unpublish_timeline: Timeline,
    /// Every write, for "something replaced the value".
    write_timeline: Timeline,
    /// Whether a publish or override of it did not fail.
    any_live_set: bool,
}

struct Checker<'a> {
    paired: &'a Paired,
    /// Value → names it was written to (to explain a read of another name's value).
    value_keys: HashMap<&'a str, Vec<&'a str>>,
    stale: Vec<Anomaly>,
    phantom: Vec<Anomaly>,
}

impl<'a> Checker<'a> {
    fn op(&self, i: usize) -> &'a Operation {
        &self.paired.ops[i]
    }

    fn stale(&mut self, key: &str, explanation: String, ops: &[usize]) {
        let ops = ops.iter().flat_map(|&i| self.op(i).indexes()).collect();
        self.stale.push(Anomaly {
            kind: "stale-read".to_string(),
            key: Some(key.to_string()),
            explanation,
            ops,
        });
    }

    fn phantom(&mut self, key: &str, explanation: String, ops: &[usize]) {
        let ops = ops.iter().flat_map(|&i| self.op(i).indexes()).collect();
        self.phantom.push(Anomaly {
            kind: "phantom-read".to_string(),
            key: Some(key.to_string()),
            explanation,
            ops,
        });
    }

    /// A read (get or list) at `read` that saw `key` absent.
    fn check_absent(&mut self, key: &str, writes: &KeyWrites<'_>, read: usize) {
        let r = self.op(read);
        let Some(w) = writes.set_timeline.latest_completed_before(r.invoke_ns) else {
            return;
        };
        let w_op = self.op(w);
        if writes
            .unpublish_timeline
            .overlapping(w_op.invoke_ns, r.end_or_max())
            .is_some()
        {
            return;
        }
        let explanation = format!(
            "{} found {key:?} absent (invoked at {} ms), but {} completed at {} ms, before that, \
             and no unpublish could have taken effect in between: the read should have seen {} or a later value",
            r.describe(),
            ms(r.invoke_ns),
            w_op.describe(),
            ms(w_op.complete_ns.unwrap_or(u64::MAX)),
            quote(w_op.value.as_deref())
        );
        self.stale(key, explanation, &[read, w]);
    }

    /// A list at `read` that included `key`.
    fn check_present_in_list(&mut self, key: &str, writes: Option<&KeyWrites<'_>>, read: usize) {
        let r = self.op(read);
        let Some(writes) = writes else {
            let explanation = format!("{} included {key:?}, which no operation ever published", r.describe());
            self.phantom(key, explanation, &[read]);
            return;
        };
        if !writes.any_live_set {
            let explanation = format!(
                "{} included {key:?}, but every publish or override of it failed",
                r.describe()
            );
            let mut ops = vec![read];
            ops.extend(writes.sets.iter().take(3));
            self.phantom(key, explanation, &ops);
            return;
        }
        let Some(u) = writes.unpublish_timeline.latest_completed_before(r.invoke_ns) else {
            return;
        };
        let u_op = self.op(u);
        if writes
            .set_timeline
            .overlapping(u_op.invoke_ns, r.end_or_max())
            .is_some()
        {
            return;
        }
        let explanation = format!(
            "{} included {key:?} (invoked at {} ms), but {} completed at {} ms, before that, \
             and no publish or override could have taken effect in between: the list should not include it",
            r.describe(),
            ms(r.invoke_ns),
            u_op.describe(),
            ms(u_op.complete_ns.unwrap_or(u64::MAX))
        );
        self.stale(key, explanation, &[read, u]);
    }

    /// A get at `read` that returned `value`.
    fn check_value(&mut self, key: &str, writes: Option<&KeyWrites<'_>>, read: usize, value: &str) {
        let r = self.op(read);
        let what = r.describe();
        let writers: Vec<usize> = writes.and_then(|w| w.by_value.get(value)).cloned().unwrap_or_default();
        if writers.is_empty() {
            let mut explanation = format!("{what} read {value:?}, which no publish or override of {key:?} wrote");
            if let Some(others) = self.value_keys.get(value) {
                let others: Vec<String> = others.iter().take(3).map(|k| format!("{k:?}")).collect();
                explanation.push_str(&format!(" (it was written to {})", others.join(", ")));
            }
            self.phantom(key, explanation, &[read]);
            return;
        }
        let live: Vec<usize> = writers
            .iter()
            .copied()
            .filter(|&w| self.op(w).outcome != Outcome::Fail)
            .collect();
        let Some(&first) = live.first() else {
            let explanation = format!("{what} read {value:?}, but the only write of it, {}, failed", {
                self.op(writers[0]).describe()
            });
            let mut ops = vec![read];
            ops.extend(writers.iter().take(3));
            self.phantom(key, explanation, &ops);
            return;
        };
        let Some(writes) = writes else { return };
        // Stale only if every (normally the one) live writer of the value was replaced.
        let mut witness = None;
        for &w1 in &live {
            let Some(end) = self.op(w1).end() else { return };
            match replacement(self.paired, writes, w1, end, r.invoke_ns, value) {
                Some(w2) if w1 == first => witness = Some(w2),
                Some(_) => {}
                None => return,
            }
        }
        let Some(w2) = witness else { return };
        let (w1_op, w2_op) = (self.op(first), self.op(w2));
        let should = match w2_op.f {
            OpFn::Unpublish => format!("{key:?} absent"),
            _ => quote(w2_op.value.as_deref()),
        };
        let explanation = format!(
            "{what} read {value:?} (invoked at {} ms), written by {} which completed at {} ms; \
             but {} was invoked after that, at {} ms, and completed at {} ms, before the get was invoked: \
             the get should have seen {should} or a later value",
            ms(r.invoke_ns),
            w1_op.describe(),
            ms(w1_op.complete_ns.unwrap_or(u64::MAX)),
            w2_op.describe(),
            ms(w2_op.invoke_ns),
            ms(w2_op.complete_ns.unwrap_or(u64::MAX)),
        );
        self.stale(key, explanation, &[read, first, w2]);
    }
}

/// An acknowledged write of `key` other than a write of `value`, invoked after `after`
/// and completed before `before`.
fn replacement(
    paired: &Paired,
    writes: &KeyWrites<'_>,
    w1: usize,
    after: u64,
    before: u64,
    value: &str,
) -> Option<usize> {
    let candidate = writes.write_timeline.latest_completed_before(before)?;
    let op = &paired.ops[candidate];
    if op.invoke_ns <= after {
        return None;
    }
    if candidate != w1 && (op.f == OpFn::Unpublish || op.value.as_deref() != Some(value)) {
        return Some(candidate);
    }
    // Values are unique per write, so this is only reached by a malformed workload: scan.
    writes.sets.iter().chain(&writes.unpublishes).copied().find(|&w| {
        let op = &paired.ops[w];
        op.outcome == Outcome::Ok
            && op.invoke_ns > after
            && op.complete_ns.is_some_and(|c| c < before)
            && (op.f == OpFn::Unpublish || op.value.as_deref() != Some(value))
    })
}

/// [`check`] on an already paired history.
pub(crate) fn check_paired(paired: &Paired) -> Verdict {
    let mut keys: BTreeMap<&str, KeyWrites<'_>> = BTreeMap::new();
    let mut value_keys: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut gets = Vec::new();
    for (i, op) in paired.ops.iter().enumerate() {
        if !op.usable {
            continue;
        }
        match (op.f, op.key.as_deref()) {
            (OpFn::Get, Some(_)) if op.outcome == Outcome::Ok => gets.push(i),
            (OpFn::List | OpFn::Get, _) => {}
            (OpFn::Publish | OpFn::Override, Some(key)) => {
                let writes = keys.entry(key).or_default();
                writes.sets.push(i);
                if let Some(value) = op.value.as_deref() {
                    writes.by_value.entry(value).or_default().push(i);
                    let names = value_keys.entry(value).or_default();
                    if !names.contains(&key) {
                        names.push(key);
                    }
                }
            }
            (OpFn::Unpublish, Some(key)) => keys.entry(key).or_default().unpublishes.push(i),
            _ => {}
        }
    }
    for writes in keys.values_mut() {
        writes.set_timeline = Timeline::new(paired, &writes.sets);
        writes.unpublish_timeline = Timeline::new(paired, &writes.unpublishes);
        let all: Vec<usize> = writes.sets.iter().chain(&writes.unpublishes).copied().collect();
        writes.write_timeline = Timeline::new(paired, &all);
        writes.any_live_set = writes.sets.iter().any(|&w| paired.ops[w].outcome != Outcome::Fail);
    }
    let mut checker = Checker {
        paired,
        value_keys,
        stale: Vec::new(),
        phantom: Vec::new(),
    };
    for &g in &gets {
        let op = &paired.ops[g];
        let Some(key) = op.key.as_deref() else { continue };
        let writes = keys.get(key);
        match (op.value.as_deref(), writes) {
            (Some(value), _) => checker.check_value(key, writes, g, value),
            (None, Some(writes)) => checker.check_absent(key, writes, g),
            (None, None) => {}
        }
    }
    // Lists, name by name: each list that includes it, then each one (invoked after a
    // publish of it completed) that does not.
    let index = &paired.lists;
    let mut list_reads = 0u64;
    for (&key, writes) in &keys {
        let containing = index.containing(key);
        for &position in containing {
            list_reads += 1;
            checker.check_present_in_list(key, Some(writes), index.lists[position]);
        }
        let Some(&(first_done, _, _)) = writes.set_timeline.by_completion.first() else {
            continue;
        };
        let from = index.lists.partition_point(|&l| paired.ops[l].invoke_ns <= first_done);
        let mut next_containing = containing.partition_point(|&p| p < from);
        for position in from..index.lists.len() {
            if containing.get(next_containing) == Some(&position) {
                next_containing += 1;
                continue;
            }
            list_reads += 1;
            checker.check_absent(key, writes, index.lists[position]);
        }
    }
    let mut unwritten: Vec<(&str, &[usize])> = index
        .containing
        .iter()
        .filter(|(name, _)| !keys.contains_key(name.as_str()))
        .map(|(name, positions)| (name.as_str(), positions.as_slice()))
        .collect();
    unwritten.sort_unstable();
    for (name, positions) in unwritten {
        for &position in positions {
            list_reads += 1;
            checker.check_present_in_list(name, None, index.lists[position]);
        }
    }
    let mut stats = BTreeMap::new();
    stats.insert("gets".to_string(), gets.len() as u64);
    stats.insert("lists".to_string(), index.lists.len() as u64);
    stats.insert("list_reads".to_string(), list_reads);
    stats.insert("stale_reads".to_string(), checker.stale.len() as u64);
    stats.insert("phantom_reads".to_string(), checker.phantom.len() as u64);
    let mut anomalies = checker.stale;
    anomalies.extend(checker.phantom);
    super::verdict(CHECKER, anomalies, Vec::new(), &paired.malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::testing::H;
    use crate::check::verdict::Validity;
    use crate::history::OpFn::*;

    fn kinds(h: &H) -> Vec<String> {
        let v = check(&h.history());
        for a in &v.anomalies {
            println!("{}: {}", a.kind, a.explanation);
        }
        v.anomalies.iter().map(|a| a.kind.clone()).collect()
    }

    #[test]
    fn flags_a_stale_read() {
        let mut h = H::new();
        h.publish(1, "k", "a").override_(1, "k", "b").get(2, "k", Some("a"));
        let v = check(&h.history());
        assert_eq!(v.validity, Validity::Invalid);
        let a = &v.anomalies[0];
        assert_eq!(a.kind, "stale-read");
        assert_eq!(a.ops, vec![4, 5, 0, 1, 2, 3]);
        assert!(a.explanation.contains("should have seen \"b\""), "{}", a.explanation);
    }

    #[test]
    fn flags_a_read_after_an_unpublish() {
        let mut h = H::new();
        h.publish(1, "k", "a").unpublish(1, "k").get(2, "k", Some("a"));
        assert_eq!(kinds(&h), vec!["stale-read"]);
    }

    #[test]
    fn does_not_flag_a_concurrent_read() {
        let mut h = H::new();
        h.publish(1, "k", "a");
        h.invoke(1, Override, "k", Some("b"));
        h.get(2, "k", Some("a")).get(2, "k", Some("b")).get(2, "k", Some("a"));
        h.ok(1);
        h.invoke(1, Unpublish, "k", None).info(1);
        h.get(2, "k", Some("b")).get(2, "k", None);
        assert!(kinds(&h).is_empty());
    }

    #[test]
    fn flags_an_absent_read_after_a_publish() {
        let mut h = H::new();
        h.publish(1, "k", "a");
        h.invoke(3, Unpublish, "k", None).fail(3);
        h.get(2, "k", None);
        assert_eq!(kinds(&h), vec!["stale-read"]);
        // With an unpublish that may have happened, it is fine.
        let mut h = H::new();
        h.publish(1, "k", "a");
        h.invoke(3, Unpublish, "k", None).info(3);
        h.get(2, "k", None);
        assert!(kinds(&h).is_empty());
    }

    #[test]
    fn flags_phantom_reads() {
        let mut h = H::new();
        h.publish(1, "k", "a").get(2, "k", Some("zzz"));
        h.invoke(1, Publish, "j", Some("b")).fail(1);
        h.get(2, "j", Some("b"));
        assert_eq!(kinds(&h), vec!["phantom-read", "phantom-read"]);
    }

    #[test]
    fn lists_are_checked_per_name() {
        let mut h = H::new();
        h.publish(1, "x", "a").publish(1, "y", "b").unpublish(1, "y");
        h.list(2, &["x"]);
        assert!(kinds(&h).is_empty());
        h.list(2, &["y"]);
        assert_eq!(kinds(&h), vec!["stale-read", "stale-read"]);
    }
}
