//! Linearizability: the Wing–Gong–Lowe search (as in Knossos' `linear` algorithm and
//! Porcupine), run separately on every dataset name (P-compositionality: a history of
//! single-name operations is linearizable iff its projection on every name is; lists
//! read every name, see below).
//!
//! A violation is an anomaly `non-linearizable` naming the key, the operation that no
//! order can place (its invoke and completion indexes first, then the last operations
//! of the longest valid order found) and the values the key could have had instead. A
//! key whose search exceeded its budget is an anomaly `undecided` and makes the verdict
//! `unknown` (unless another key is `invalid`).
//!
//! # Model
//!
//! Each name is a register whose state is `Option<String>` (absent or a value),
//! initially absent. Per key, the operations searched are:
//!
//! | operation  | `ok`                              | `info` / never completed          | `fail`  |
//! |------------|-----------------------------------|-----------------------------------|---------|
//! | publish v  | requires absent, becomes v        | absent → v; present → unchanged   | dropped |
//! | override v | becomes v                         | becomes v                         | dropped |
//! | unpublish  | requires present, becomes absent  | becomes absent                    | dropped |
//! | get        | requires state = value read       | dropped                           | dropped |
//! | list       | requires present = name listed    | dropped                           | dropped |
//!
//! An unknown write returns at +∞: it may take effect at any time after its invoke, or
//! never (linearized after everything else, where nobody observes it). Real-time
//! precedence uses `time_ns` strictly: A precedes B only if A completed strictly before B
//! was invoked (equal times count as concurrent, which can only hide a violation, never
//! invent one).
//!
//! # Lists
//!
//! A list is a read of every name at once; it is projected on name `k` as a read of
//! "does `k` exist?". With `k`'s window `[first invoke of a searched op on k, last
//! completion of one (+∞ if an unknown write on k)]`:
//!
//! - a list that completed before the window precedes every operation on `k`, so it
//!   must not contain `k` (checked directly);
//! - a list invoked after the window follows every operation on `k`, so all such
//!   lists read the same final state: they must agree with each other (checked
//!   directly), and one of them is added to the search, which then requires some order
//!   of `k`'s operations to end in that state;
//! - any other list overlaps the window and is added to the search as a read, except
//!   the reads that provably cannot matter (a run of lists reading the same while no
//!   other operation on `k` completes; see `drop_redundant_reads`), which are dropped.
//!
//! Each of these is exact for the projection of the history on `k` (lists plus `k`'s
//! operations), and a projection of a linearizable history is linearizable, so a
//! reported violation is always real (sound), and nothing is lost compared with
//! projecting every list. Checking names apart is exact for single-name operations
//! (linearizability is local), but a list reads every name at one instant, so a list
//! showing a combination of names that never existed at once (each name fine on its
//! own) is not detected: the check is sound, and complete only for histories without
//! lists concurrent with writes.
//!
//! # Search
//!
//! Per key: a doubly linked list of call and return entries sorted by time (calls
//! before returns at equal times); the search linearizes the first call whose model
//! step succeeds and whose (linearized set, state) was not seen before (the cache),
//! lifting the call and its return out of the list; reaching a return means that
//! operation could not be linearized in time, so it backtracks (unlifts the last
//! linearized call, restores its state and tries the next call). It succeeds when the
//! list is empty or only unknown writes (returning at +∞, whose steps always succeed)
//! remain; it fails when it must backtrack with nothing linearized. A key whose search
//! exceeds its time or memory budget is `unknown`.
//!
//! Exact reductions keep it fast, above all on violations (which need the whole
//! search) and with many unknown writes:
//! - a read that can go now (callable and matching the state) is linearized at once,
//!   with no alternative tried: if that fails, the configuration fails;
//! - written values that no get returned are indistinguishable and share one id;
//! - identical unknown writes are linearized only in invoke order (symmetry);
//! - each configuration tries finite operations before unknown writes, and a
//!   configuration is abandoned when the same one without one of its unknown writes
//!   (same state) already failed (dominance: a pending unknown write can only help);
//! - the cache is an arena of bitsets found by an incrementally maintained (Zobrist)
//!   hash.
//!
//! The tests compare the search with a brute-force enumeration of orders on thousands
//! of random histories.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::history::{Op, OpFn};

use super::paired::{self, Operation, Outcome, Paired};
use super::verdict::{Anomaly, Verdict};
use super::CheckOptions;

/// The checker's name in its verdict.
pub const CHECKER: &str = "linearizable";

/// Checks that the history is linearizable, key by key (see the module documentation).
pub fn check(history: &[Op], options: &CheckOptions) -> Verdict {
    check_paired(&paired::pair(history), options)
}

/// A value id: 0 is "absent", others index [`KeyProblem::values`] (minus one).
type Value = u32;

/// What an operation does to, or requires of, a key's register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Input {
    /// Publish without override; `certain` when acknowledged.
    Publish { value: Value, certain: bool },
    /// Publish with override.
    Override { value: Value },
    /// Unpublish; `certain` when acknowledged.
    Unpublish { certain: bool },
    /// A get that returned this value (0 = not found).
    Read { value: Value },
    /// A list, projected: whether it included the key.
    Exists(bool),
}

/// The register's transition: the new state, or `None` if the operation cannot happen
/// in `state`.
fn step(state: Value, input: Input) -> Option<Value> {
    match input {
        Input::Publish { value, certain: true } => (state == 0).then_some(value),
        Input::Publish { value, certain: false } => Some(if state == 0 { value } else { state }),
        Input::Override { value } => Some(value),
        Input::Unpublish { certain: true } => (state != 0).then_some(0),
        Input::Unpublish { certain: false } => Some(0),
        Input::Read { value } => (state == value).then_some(state),
        Input::Exists(present) => ((state != 0) == present).then_some(state),
    }
}

/// One operation of a key's history, as the search sees it.
#[derive(Debug, Clone, Copy)]
struct KeyOp {
    /// Invoke time (ns).
    call: u64,
    /// Latest time it may take effect (ns); `u64::MAX` for an unknown write (and only then).
    ret: u64,
    input: Input,
    /// Index in [`Paired::ops`].
    source: usize,
}

/// The search problem of one key.
struct KeyProblem<'a> {
    key: &'a str,
    ops: Vec<KeyOp>,
    /// Value id `i` (≥ 1) is `values[i - 1]`: (text, written by a publish/override of this key).
    values: Vec<(String, bool)>,
    /// The id standing for every written value no get returned, if any.
    unread: Option<Value>,
    /// A violation found without searching (a list before or after every operation).
    direct: Option<Anomaly>,
    /// How many list reads were added to `ops`.
    list_reads: usize,
    /// How many list reads were dropped as redundant.
    list_reads_dropped: usize,
}

impl KeyProblem<'_> {
    fn show(&self, value: Value) -> String {
        match value {
            0 => "absent".to_string(),
            v if Some(v) == self.unread => self.values.get(v as usize - 1).map(|t| t.0.clone()).unwrap_or_default(),
            v => match self.values.get(v as usize - 1) {
                Some((text, _)) => format!("{text:?}"),
                None => format!("<value #{v}>"),
            },
        }
    }
}

struct Interner<'a> {
    ids: HashMap<&'a str, Value>,
    values: Vec<(String, bool)>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, value: Option<&'a str>, written: bool) -> Value {
        let Some(text) = value else {
            // A write without a value (malformed): a value nobody can read.
            self.values.push(("<unknown value>".to_string(), written));
            return self.values.len() as Value;
        };
        match self.ids.entry(text) {
            Entry::Occupied(e) => {
                let id = *e.get();
                if written {
                    self.values[id as usize - 1].1 = true;
                }
                id
            }
            Entry::Vacant(e) => {
                self.values.push((text.to_string(), written));
                let id = self.values.len() as Value;
                e.insert(id);
                id
            }
        }
    }
}

fn non_linearizable(key: &str, explanation: String, ops: Vec<u64>) -> Anomaly {
    Anomaly {
        kind: "non-linearizable".to_string(),
        key: Some(key.to_string()),
        explanation,
        ops,
    }
}

/// Splits the history per key and projects the lists (see the module documentation).
fn build_problems(paired: &Paired, compress: bool) -> Vec<KeyProblem<'_>> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in paired.ops.iter().enumerate() {
        if op.usable && op.f != OpFn::List {
            if let Some(key) = op.key.as_deref() {
                by_key.entry(key).or_default().push(i);
            }
        }
    }
    for name in paired.lists.containing.keys() {
        by_key.entry(name).or_default();
    }
    let mut problems = Vec::with_capacity(by_key.len());
    for (key, indexes) in by_key {
        let mut interner = Interner {
            ids: HashMap::new(),
            values: Vec::new(),
        };
        let mut ops = Vec::new();
        for &i in &indexes {
            let op = &paired.ops[i];
            if op.outcome == Outcome::Fail {
                continue;
            }
            let certain = op.outcome == Outcome::Ok;
            let input = match op.f {
                OpFn::Publish => Input::Publish {
                    value: interner.id(op.value.as_deref(), true),
                    certain,
                },
                OpFn::Override => Input::Override {
                    value: interner.id(op.value.as_deref(), true),
                },
                OpFn::Unpublish => Input::Unpublish { certain },
                OpFn::Get if certain => Input::Read { value: 0 },
                // Data-plane functions reach this checker only projected
                // (history::catalog_projection): put as publish, read as get.
                _ => continue,
            };
            let ret = if certain {
                op.complete_ns.unwrap_or(op.invoke_ns)
            } else {
                u64::MAX
            };
            ops.push(KeyOp {
                call: op.invoke_ns,
                ret,
                input,
                source: i,
            });
        }
        // Reads are interned after every write, so `written` is final for each value.
        for kop in &mut ops {
            if let Input::Read { value } = &mut kop.input {
                *value = match paired.ops[kop.source].value.as_deref() {
                    Some(text) => interner.id(Some(text), false),
                    None => 0,
                };
            }
        }
        let unread = merge_unread_values(&mut ops, &mut interner.values);
        let mut problem = KeyProblem {
            key,
            ops,
            values: Vec::new(),
            unread,
            direct: None,
            list_reads: 0,
            list_reads_dropped: 0,
        };
        project_lists(paired, &mut problem, compress);
        problem.values = interner.values;
        problems.push(problem);
    }
    problems
}

/// Gives every written value that no get returned one id: such values are
/// indistinguishable (only their presence is observable: by lists, publishes,
/// unpublishes and gets of other values), so merging them is exact, and it shrinks the
/// search (states and, through [`info_predecessors`], symmetric unknown writes).
fn merge_unread_values(ops: &mut [KeyOp], values: &mut Vec<(String, bool)>) -> Option<Value> {
    let read: HashSet<Value> = ops
        .iter()
        .filter_map(|o| match o.input {
            Input::Read { value } => Some(value),
            _ => None,
        })
        .collect();
    let unread = |v: Value| v != 0 && !read.contains(&v);
    let mut merged: Vec<Value> = ops
        .iter()
        .filter_map(|o| match o.input {
            Input::Publish { value, .. } | Input::Override { value } if unread(value) => Some(value),
            _ => None,
        })
        .collect();
    merged.sort_unstable();
    merged.dedup();
    if merged.len() < 2 {
        return None;
    }
    let mut examples: Vec<String> = merged
        .iter()
        .take(3)
        .map(|&v| format!("{:?}", values[v as usize - 1].0))
        .collect();
    if merged.len() > 3 {
        examples.push(format!("{} more", merged.len() - 3));
    }
    values.push((
        format!("one of the values no get returned ({})", examples.join(", ")),
        true,
    ));
    let id = values.len() as Value;
    for op in ops.iter_mut() {
        match &mut op.input {
            Input::Publish { value, .. } | Input::Override { value } if unread(*value) => *value = id,
            _ => {}
        }
    }
    Some(id)
}

/// For each unknown write (returning at +∞), the unknown write with the same input
/// invoked just before it (`NIL` if none). Identical unknown writes are interchangeable,
/// so the search only linearizes them in invoke order (exact: in any valid order,
/// giving the k-th slot among them to the k-th invoked keeps it valid).
fn info_predecessors(ops: &[KeyOp]) -> Vec<usize> {
    let mut groups: HashMap<Input, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.ret == u64::MAX {
            groups.entry(op.input).or_default().push(i);
        }
    }
    let mut predecessor = vec![NIL; ops.len()];
    for mut group in groups.into_values() {
        group.sort_by_key(|&i| (ops[i].call, i));
        for pair in group.windows(2) {
            predecessor[pair[1]] = pair[0];
        }
    }
    predecessor
}

/// Adds the lists to a key's problem, or finds a violation directly.
fn project_lists(paired: &Paired, problem: &mut KeyProblem<'_>, compress: bool) {
    let key = problem.key;
    let index = &paired.lists;
    let start = problem.ops.iter().map(|o| o.call).min().unwrap_or(u64::MAX);
    let end = problem.ops.iter().map(|o| o.ret).max().unwrap_or(0);
    let containing = index.containing(key);
    // A list that includes the name but completed before its first operation.
    if let Some(&position) = containing
        .iter()
        .find(|&&p| paired.ops[index.lists[p]].end_or_max() < start)
    {
        let list = &paired.ops[index.lists[position]];
        let why = if problem.ops.is_empty() {
            "no publish or override of it was issued, or every one failed"
        } else {
            "it completed before any operation on that name was invoked"
        };
        problem.direct = Some(non_linearizable(
            key,
            format!(
                "{} included {key:?}, but {why}: it could only be absent",
                list.describe()
            ),
            list.indexes(),
        ));
        return;
    }
    if problem.ops.is_empty() {
        return;
    }
    let mut after: Option<(usize, bool)> = None;
    let mut projected = Vec::new();
    let first = index.first_ending_from(start);
    let mut next_containing = containing.partition_point(|&p| p < first);
    for position in first..index.lists.len() {
        let present = containing.get(next_containing) == Some(&position);
        if present {
            next_containing += 1;
        }
        let i = index.lists[position];
        let list = &paired.ops[i];
        let list_end = list.end_or_max();
        if list_end < start {
            // Before every operation on the name, and without it: fine.
        } else if end != u64::MAX && list.invoke_ns > end {
            match after {
                None => after = Some((i, present)),
                Some((first, first_present)) if first_present != present => {
                    let first = &paired.ops[first];
                    let (with, without) = if first_present { (first, list) } else { (list, first) };
                    let mut ops = with.indexes();
                    ops.extend(without.indexes());
                    problem.direct = Some(non_linearizable(
                        key,
                        format!(
                            "{} included {key:?} and {} did not, yet both follow every operation on it \
                             (nothing could change it in between)",
                            with.describe(),
                            without.describe()
                        ),
                        ops,
                    ));
                    return;
                }
                Some(_) => {}
            }
        } else {
            projected.push(KeyOp {
                call: list.invoke_ns,
                ret: list_end,
                input: Input::Exists(present),
                source: i,
            });
        }
    }
    if let Some((i, present)) = after {
        let list = &paired.ops[i];
        projected.push(KeyOp {
            call: list.invoke_ns,
            ret: list.end_or_max(),
            input: Input::Exists(present),
            source: i,
        });
    }
    let candidates = projected.len();
    let kept = if compress {
        drop_redundant_reads(&problem.ops, projected)
    } else {
        projected
    };
    problem.list_reads = kept.len();
    problem.list_reads_dropped = candidates - kept.len();
    problem.ops.extend(kept);
}

/// Drops the list reads that cannot change the outcome, exactly: a read `b` whose
/// latest predecessor `a` (in invoke order) reading the same completes no later than
/// `b`, when every operation completing in `[a.call, b.call)` is a read of that same
/// value. Any valid order of the rest stays valid with `b` placed right after the last
/// of `a` and those reads: the state there is the value read; whatever must precede `b`
/// (completed before `b.call`) either precedes `a` or is one of those reads; whatever
/// must follow `b` (invoked after `b` completed) follows them too, as they all
/// complete no later than `b`. Deciding from last to first, the history each decision
/// sees differs only by reads invoked after `b.call`, which complete too late to
/// matter. This collapses the long runs of identical lists while a name is idle, or
/// while only its unknown writes are pending.
fn drop_redundant_reads(ops: &[KeyOp], mut reads: Vec<KeyOp>) -> Vec<KeyOp> {
    reads.sort_by_key(|r| (r.call, r.ret));
    // For a read of `present`, the returns that block: every other operation's and the
    // reads of `!present`.
    let blocking = |present: bool| -> Vec<u64> {
        let mut returns: Vec<u64> = ops
            .iter()
            .chain(reads.iter().filter(|r| r.input != Input::Exists(present)))
            .map(|o| o.ret)
            .filter(|&r| r != u64::MAX)
            .collect();
        returns.sort_unstable();
        returns
    };
    let blocking = [blocking(false), blocking(true)];
    let mut last: [Option<usize>; 2] = [None, None];
    let mut kept = Vec::with_capacity(reads.len());
    for (b, read) in reads.iter().enumerate() {
        let Input::Exists(present) = read.input else {
            kept.push(*read);
            continue;
        };
        let slot = usize::from(present);
        let redundant = last[slot].map(|a| &reads[a]).is_some_and(|a| {
            let returns = &blocking[slot];
            let (from, to) = (a.call, read.call);
            a.ret <= read.ret
                && (from >= to || returns.partition_point(|&r| r < to) == returns.partition_point(|&r| r < from))
        });
        last[slot] = Some(b);
        if !redundant {
            kept.push(*read);
        }
    }
    kept
}

/// The deepest point the search reached: the operation it could not linearize.
#[derive(Debug, Clone)]
struct Frontier {
    /// How many operations were linearized.
    depth: usize,
    /// The operation whose return was reached before it could be linearized.
    blocked: usize,
    /// The states in which it could not be linearized (at most [`MAX_STATES`]).
    states: Vec<Value>,
    /// The last operations linearized, most recent first.
    tail: Vec<usize>,
}

const MAX_STATES: usize = 8;

/// What the search of one key concluded.
#[derive(Debug)]
enum SearchResult {
    Linearizable {
        configurations: usize,
    },
    Violation {
        configurations: usize,
        frontier: Option<Frontier>,
    },
    Unknown {
        configurations: usize,
        reason: String,
    },
}

impl SearchResult {
    fn configurations(&self) -> usize {
        match self {
            SearchResult::Linearizable { configurations }
            | SearchResult::Violation { configurations, .. }
            | SearchResult::Unknown { configurations, .. } => *configurations,
        }
    }
}

/// A hasher for keys that already are good hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }
}

/// SplitMix64: a well-mixed 64-bit value of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where the configurations with one hash are in the arena.
enum Slot {
    One(usize),
    Many(Vec<usize>),
}

/// The configurations seen (linearized set, then the state, as words), stored in one
/// arena and found by a hash maintained incrementally by the search (Zobrist hashing):
/// no allocation or full hashing per configuration.
struct ConfigCache {
    width: usize,
    arena: Vec<u64>,
    slots: HashMap<u64, Slot, BuildHasherDefault<IdentityHasher>>,
    len: usize,
}

impl ConfigCache {
    fn new(width: usize) -> Self {
        ConfigCache {
            width,
            arena: Vec::new(),
            slots: HashMap::default(),
            len: 0,
        }
    }

    fn at(&self, index: usize) -> &[u64] {
        &self.arena[index * self.width..(index + 1) * self.width]
    }

    fn contains(&self, hash: u64, config: &[u64]) -> bool {
        match self.slots.get(&hash) {
            None => false,
            Some(Slot::One(i)) => self.at(*i) == config,
            Some(Slot::Many(all)) => all.iter().any(|&i| self.at(i) == config),
        }
    }

    /// Adds a configuration not yet present.
    fn insert(&mut self, hash: u64, config: &[u64]) {
        let index = self.len;
        self.arena.extend_from_slice(config);
        self.len += 1;
        match self.slots.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(Slot::One(index));
            }
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                match slot {
                    Slot::One(first) => *slot = Slot::Many(vec![*first, index]),
                    Slot::Many(all) => all.push(index),
                }
            }
        }
    }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Removes a call entry and its return entry from the list.
fn lift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) {
    for node in [call, ret] {
        let (p, n) = (prev[node], next[node]);
        next[p] = n;
        if n != NIL {
            prev[n] = p;
        }
    }
}

/// Puts back what [`lift`] removed (in reverse order).
fn unlift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) {
    for node in [ret, call] {
        let (p, n) = (prev[node], next[node]);
        next[p] = node;
        if n != NIL {
            prev[n] = node;
        }
    }
}

/// The WGL search of one key's operations.
fn search(ops: &[KeyOp], deadline: Option<Instant>, max_configurations: usize) -> SearchResult {
    let n = ops.len();
    if n == 0 {
        return SearchResult::Linearizable { configurations: 0 };
    }
    // Entries sorted by time, calls before returns at equal times (= concurrent).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i));
        events.push((op.ret.max(op.call), true, i));
    }
    events.sort_unstable();
    let nodes = 2 * n + 1;
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut node_op = vec![0usize; nodes];
    let mut node_is_call = vec![false; nodes];
    let mut call_node = vec![NIL; n];
    let mut ret_node = vec![NIL; n];
    for (position, &(_, is_return, i)) in events.iter().enumerate() {
        let node = position + 1;
        node_op[node] = i;
        node_is_call[node] = !is_return;
        if is_return {
            ret_node[i] = node;
        } else {
            call_node[i] = node;
        }
        prev[node] = position;
        next[position] = node;
    }

    let predecessor = info_predecessors(ops);
    let is_info: Vec<bool> = ops.iter().map(|o| o.ret == u64::MAX).collect();
    let words = n.div_ceil(64);
    // The configuration: the linearized set, then the state as the last word.
    let mut config = vec![0u64; words + 1];
    let mut cache = ConfigCache::new(words + 1);
    // Zobrist keys: the hash of a configuration is the xor of its operations' keys and
    // of its state's.
    let keys: Vec<u64> = (0..n as u64).map(mix).collect();
    let state_key = |state: Value| mix(u64::from(state) | 1 << 63);
    let mut linearized_hash: u64 = 0;
    // (call entry, state before it, whether it is a read).
    let mut calls: Vec<(usize, Value, bool)> = Vec::new();
    // The unknown writes linearized, in order.
    let mut infos: Vec<usize> = Vec::new();
    let mut state: Value = 0;
    let mut entry = next[HEAD];
    // Each configuration is scanned twice: for finite operations first, then for
    // unknown writes, so that configurations with fewer unknown writes are explored
    // first (which makes the dominance check below effective).
    let mut info_phase = false;
    let mut frontier: Option<Frontier> = None;
    let mut iterations: u64 = 0;
    loop {
        iterations += 1;
        if iterations.is_multiple_of(1024) {
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return SearchResult::Unknown {
                        configurations: cache.len,
                        reason: "it exceeded its time budget".to_string(),
                    };
                }
            }
        }
        if next[HEAD] == NIL || entry == NIL {
            // `entry == NIL` cannot happen (every call's return follows it); kept total.
            return SearchResult::Linearizable {
                configurations: cache.len,
            };
        }
        let i = node_op[entry];
        if node_is_call[entry] {
            if is_info[i] != info_phase {
                entry = next[entry];
                continue;
            }
            let p = predecessor[i];
            if p != NIL && config[p / 64] & (1 << (p % 64)) == 0 {
                // An identical unknown write invoked earlier goes first.
                entry = next[entry];
                continue;
            }
            let Some(new_state) = step(state, ops[i].input) else {
                entry = next[entry];
                continue;
            };
            let is_read = matches!(ops[i].input, Input::Read { .. } | Input::Exists(_));
            config[i / 64] |= 1 << (i % 64);
            config[words] = u64::from(new_state);
            let hash = linearized_hash ^ keys[i] ^ state_key(new_state);
            let mut failed = cache.contains(hash, &config);
            // Dominance: the same configuration without one of its unknown writes `x`,
            // in the same state, was explored and failed (it is not on the stack: the
            // only configuration there of its size is the current one, without `i`).
            // Having `x` still to linearize can only help (it may go last, unobserved),
            // so this one fails too.
            for &x in &infos {
                if failed {
                    break;
                }
                config[x / 64] &= !(1 << (x % 64));
                failed = cache.contains(hash ^ keys[x], &config);
                config[x / 64] |= 1 << (x % 64);
            }
            if !failed {
                if cache.len >= max_configurations {
                    return SearchResult::Unknown {
                        configurations: cache.len,
                        reason: format!("it exceeded its memory budget of {max_configurations} configurations"),
                    };
                }
                cache.insert(hash, &config);
                linearized_hash ^= keys[i];
                if is_info[i] {
                    infos.push(i);
                }
                calls.push((entry, state, is_read));
                state = new_state;
                lift(&mut next, &mut prev, entry, ret_node[i]);
                entry = next[HEAD];
                info_phase = false;
                continue;
            }
            config[i / 64] &= !(1 << (i % 64));
            if !is_read {
                entry = next[entry];
                continue;
            }
            // A read that may go now leads to a configuration known to fail: so does
            // this one (see below).
        } else {
            // A return: operation `i` was not linearized before it.
            if is_info[i] {
                // Every remaining operation is an unknown write, which can always be
                // linearized (at the end, unobserved).
                return SearchResult::Linearizable {
                    configurations: cache.len,
                };
            }
            if !info_phase {
                // Now the unknown writes invoked before this return.
                info_phase = true;
                entry = next[HEAD];
                continue;
            }
            let depth = calls.len();
            match &mut frontier {
                Some(f) if f.depth > depth => {}
                Some(f) if f.depth == depth => {
                    if f.blocked == i && f.states.len() < MAX_STATES && !f.states.contains(&state) {
                        f.states.push(state);
                    }
                }
                _ => {
                    frontier = Some(Frontier {
                        depth,
                        blocked: i,
                        states: vec![state],
                        tail: calls.iter().rev().take(4).map(|&(c, _, _)| node_op[c]).collect(),
                    })
                }
            }
        }
        // The current configuration fails: backtrack. A read that was linearized as soon
        // as it could be (it was callable and matched the state) needs no alternative:
        // moving a read earlier, to where it matches, keeps any valid order valid (it
        // changes nothing and every operation that must precede it already does), so if
        // linearizing it failed, so does the configuration before it: keep undoing.
        loop {
            let Some((call, previous, was_read)) = calls.pop() else {
                return SearchResult::Violation {
                    configurations: cache.len,
                    frontier,
                };
            };
            let j = node_op[call];
            state = previous;
            config[j / 64] &= !(1 << (j % 64));
            linearized_hash ^= keys[j];
            if is_info[j] {
                infos.pop();
            }
            unlift(&mut next, &mut prev, call, ret_node[j]);
            entry = next[call];
            info_phase = is_info[j];
            if !was_read {
                break;
            }
        }
    }
}

/// The most operations of `ops` in progress at once.
fn max_concurrency(ops: &[KeyOp]) -> usize {
    let mut events: Vec<(u64, bool)> = ops
        .iter()
        .flat_map(|o| [(o.call, false), (o.ret.max(o.call), true)])
        .collect();
    events.sort_unstable();
    let (mut now, mut max) = (0usize, 0usize);
    for (_, is_return) in events {
        if is_return {
            now = now.saturating_sub(1);
        } else {
            now += 1;
            max = max.max(now);
        }
    }
    max
}

/// An operation of the search, with what it read.
fn describe_key_op(paired: &Paired, problem: &KeyProblem<'_>, op: &KeyOp) -> String {
    let source: &Operation = &paired.ops[op.source];
    match op.input {
        Input::Exists(present) => {
            format!(
                "{} ({} {:?})",
                source.describe(),
                if present { "including" } else { "omitting" },
                problem.key
            )
        }
        _ => source.describe_with_result(),
    }
}

/// The anomaly of a failed search.
fn violation(paired: &Paired, problem: &KeyProblem<'_>, frontier: Option<&Frontier>) -> Anomaly {
    let key = problem.key;
    let Some(frontier) = frontier else {
        return non_linearizable(
            key,
            format!("no order of the operations on {key:?} is valid"),
            Vec::new(),
        );
    };
    let Some(op) = problem.ops.get(frontier.blocked) else {
        return non_linearizable(
            key,
            format!("no order of the operations on {key:?} is valid"),
            Vec::new(),
        );
    };
    let what = paired.ops[op.source].describe();
    let states: Vec<String> = frontier.states.iter().map(|&s| problem.show(s)).collect();
    let states = states.join(" or ");
    let mut explanation = match op.input {
        Input::Read { value } => {
            let mut text = format!(
                "{what} read {}, but no order of the operations before and concurrent with it allows that: \
                 at that point {key:?} could only be {states}",
                problem.show(value)
            );
            if value != 0 && !problem.values.get(value as usize - 1).is_some_and(|v| v.1) {
                text.push_str(&format!(
                    "; no publish or override of {key:?} ever wrote {}",
                    problem.show(value)
                ));
            }
            text
        }
        Input::Exists(present) => format!(
            "{what} {} {key:?}, but no order of the operations before and concurrent with it allows that: \
             at that point {key:?} could only be {states}",
            if present { "included" } else { "omitted" }
        ),
        Input::Publish { certain: true, .. } => format!(
            "{what} succeeded, but in every possible order {key:?} was already published at that point \
             (value: {states})"
        ),
        Input::Unpublish { certain: true } => {
            format!("{what} succeeded, but in every possible order {key:?} was absent at that point")
        }
        _ => format!("{what} could not be linearized (value: {states})"),
    };
    explanation.push_str(&format!(
        ". The longest valid order found covers {} of the {} operations on {key:?} (lists included)",
        frontier.depth,
        problem.ops.len()
    ));
    let mut ops = paired.ops[op.source].indexes();
    if !frontier.tail.is_empty() {
        let last: Vec<String> = frontier
            .tail
            .iter()
            .filter_map(|&t| problem.ops.get(t))
            .map(|o| describe_key_op(paired, problem, o))
            .collect();
        explanation.push_str(&format!(
            "; its last operations, most recent first: {}",
            last.join("; ")
        ));
        for &t in &frontier.tail {
            if let Some(o) = problem.ops.get(t) {
                ops.extend(paired.ops[o.source].indexes());
            }
        }
    }
    explanation.push('.');
    non_linearizable(key, explanation, ops)
}

fn deadline_after(now: Instant, budget: Duration) -> Option<Instant> {
    now.checked_add(budget)
}

/// Searches every problem that needs it, in parallel; `None` for a key not searched.
fn run_searches(
    problems: &[KeyProblem<'_>],
    options: &CheckOptions,
    total: Option<Instant>,
) -> Vec<Option<SearchResult>> {
    let mut order: Vec<usize> = (0..problems.len()).filter(|&i| problems[i].direct.is_none()).collect();
    // The biggest first, so that they do not end up alone on one thread.
    order.sort_by_key(|&i| std::cmp::Reverse(problems[i].ops.len()));
    let search_one = |i: usize| -> SearchResult {
        let now = Instant::now();
        if total.is_some_and(|t| now >= t) {
            return SearchResult::Unknown {
                configurations: 0,
                reason: "the total time budget was exhausted before it was searched".to_string(),
            };
        }
        let deadline = match (deadline_after(now, options.time_budget), total) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        search(&problems[i].ops, deadline, options.max_configurations)
    };
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
    .min(order.len())
    .max(1);
    let mut results: Vec<Option<SearchResult>> = (0..problems.len()).map(|_| None).collect();
    if threads == 1 {
        for &i in &order {
            results[i] = Some(search_one(i));
        }
        return results;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = order.get(j) else { break };
                        done.push((i, search_one(i)));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            // A panicked thread's keys stay `None` and are reported unknown.
            if let Ok(done) = handle.join() {
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        }
    });
    results
}

/// [`check`] on an already paired history.
pub(crate) fn check_paired(paired: &Paired, options: &CheckOptions) -> Verdict {
    let started = Instant::now();
    let problems = build_problems(paired, true);
    let results = run_searches(&problems, options, deadline_after(started, options.total_time_budget));
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    let (mut ops, mut max_ops, mut list_reads, mut configurations, mut unknown, mut invalid) = (0, 0, 0, 0, 0, 0);
    let mut list_reads_dropped = 0;
    for (problem, result) in problems.iter().zip(results) {
        ops += problem.ops.len();
        max_ops = max_ops.max(problem.ops.len());
        list_reads += problem.list_reads;
        list_reads_dropped += problem.list_reads_dropped;
        if let Some(direct) = &problem.direct {
            invalid += 1;
            anomalies.push(direct.clone());
            continue;
        }
        let result = result.unwrap_or(SearchResult::Unknown {
            configurations: 0,
            reason: "its search thread failed".to_string(),
        });
        configurations += result.configurations();
        match result {
            SearchResult::Linearizable { .. } => {}
            SearchResult::Violation { frontier, .. } => {
                invalid += 1;
                anomalies.push(violation(paired, problem, frontier.as_ref()));
            }
            SearchResult::Unknown { configurations, reason } => {
                unknown += 1;
                undecided.push(Anomaly {
                    kind: "undecided".to_string(),
                    key: Some(problem.key.to_string()),
                    explanation: format!(
                        "the linearizability search of {:?} ({} operations, at most {} concurrent) was abandoned \
                         after {configurations} configurations: {reason}",
                        problem.key,
                        problem.ops.len(),
                        max_concurrency(&problem.ops)
                    ),
                    ops: Vec::new(),
                });
            }
        }
    }
    let mut stats = BTreeMap::new();
    stats.insert("keys".to_string(), problems.len() as u64);
    stats.insert("ops".to_string(), ops as u64);
    stats.insert("max_ops_per_key".to_string(), max_ops as u64);
    stats.insert("list_reads".to_string(), list_reads as u64);
    stats.insert("list_reads_dropped".to_string(), list_reads_dropped as u64);
    stats.insert("keys_unknown".to_string(), unknown);
    stats.insert("keys_invalid".to_string(), invalid);
    stats.insert("configurations".to_string(), configurations as u64);
    stats.insert("elapsed_ms".to_string(), started.elapsed().as_millis() as u64);
    super::verdict(CHECKER, anomalies, undecided, &paired.malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::testing::H;
    use crate::check::verdict::Validity;
    use crate::history::OpFn::*;

    fn run(h: &H) -> Verdict {
        check(&h.history(), &CheckOptions::default())
    }

    fn assert_valid(h: &H) {
        let v = run(h);
        assert_eq!(v.validity, Validity::Valid, "{v:#?}");
    }

    fn assert_invalid(h: &H, key: &str) -> Anomaly {
        let v = run(h);
        assert_eq!(v.validity, Validity::Invalid, "{v:#?}");
        let a = v
            .anomalies
            .iter()
            .find(|a| a.kind == "non-linearizable")
            .unwrap()
            .clone();
        assert_eq!(a.key.as_deref(), Some(key));
        println!("{}", a.explanation);
        a
    }

    #[test]
    fn sequential_publish_get_unpublish_get() {
        let mut h = H::new();
        h.publish(1, "k", "a")
            .get(2, "k", Some("a"))
            .unpublish(1, "k")
            .get(2, "k", None);
        h.override_(1, "k", "b").get(2, "k", Some("b"));
        assert_valid(&h);
    }

    #[test]
    fn concurrent_writes_and_reads_with_one_valid_order() {
        // Two overlapping overrides; reads show "b" then "a": only b-then-a works.
        let mut h = H::new();
        h.invoke(1, Override, "k", Some("a"))
            .invoke(2, Override, "k", Some("b"));
        h.invoke(3, Get, "k", None).ok_get(3, Some("b"));
        h.invoke(3, Get, "k", None).ok_get(3, Some("a"));
        h.ok(1).ok(2);
        h.get(3, "k", Some("a"));
        assert_valid(&h);
        // ...and then reading "b" again is impossible.
        h.get(3, "k", Some("b"));
        let a = assert_invalid(&h, "k");
        assert!(a.explanation.contains("read \"b\""), "{}", a.explanation);
    }

    #[test]
    fn concurrent_publishes_one_wins() {
        let mut h = H::new();
        h.invoke(1, Publish, "k", Some("a")).invoke(2, Publish, "k", Some("b"));
        h.ok(1).fail(2);
        h.get(3, "k", Some("a"));
        assert_valid(&h);
    }

    #[test]
    fn info_publish_that_later_turns_out_applied() {
        let mut h = H::new();
        h.invoke(1, Publish, "k", Some("a")).info(1);
        h.get(2, "k", None).get(2, "k", Some("a")).get(2, "k", Some("a"));
        assert_valid(&h);
    }

    #[test]
    fn info_publish_never_seen() {
        let mut h = H::new();
        h.invoke(1, Publish, "k", Some("a")).info(1);
        h.get(2, "k", None).get(2, "k", None);
        h.invoke(3, Override, "k", Some("b")); // never completes
        h.get(2, "k", None);
        assert_valid(&h);
    }

    #[test]
    fn info_publish_seen_then_unseen_is_not_linearizable() {
        let mut h = H::new();
        h.invoke(1, Publish, "k", Some("a")).info(1);
        h.get(2, "k", Some("a")).get(2, "k", None);
        assert_invalid(&h, "k");
    }

    #[test]
    fn failed_publish_is_dropped() {
        let mut h = H::new();
        h.publish(1, "k", "a");
        h.invoke(2, Publish, "k", Some("b")).fail(2);
        h.get(3, "k", Some("a"));
        assert_valid(&h);
        h.invoke(2, Override, "k", Some("c")).fail(2);
        h.get(3, "k", Some("c"));
        assert_invalid(&h, "k");
    }

    #[test]
    fn lists_are_checked_per_key() {
        let mut h = H::new();
        h.list(9, &[]);
        h.publish(1, "x", "a").publish(2, "y", "b");
        h.list(9, &["x", "y"]);
        h.invoke(1, Unpublish, "x", None);
        h.invoke_list(9).ok_list(9, &["x", "y"]); // concurrent with the unpublish
        h.ok(1);
        h.list(9, &["y"]).list(9, &["y"]);
        assert_valid(&h);
    }

    #[test]
    fn list_missing_a_published_key() {
        let mut h = H::new();
        h.publish(1, "x", "a").publish(2, "y", "b");
        h.get(1, "x", Some("a"));
        h.list(9, &["y"]);
        let a = assert_invalid(&h, "x");
        assert!(a.explanation.contains("omit"), "{}", a.explanation);
    }

    #[test]
    fn list_after_everything_must_agree() {
        let mut h = H::new();
        h.publish(1, "x", "a");
        h.list(9, &["x"]).list(9, &[]);
        assert_invalid(&h, "x");
    }

    #[test]
    fn list_of_a_name_never_published() {
        let mut h = H::new();
        h.invoke(1, Publish, "z", Some("a")).fail(1);
        h.list(9, &["z"]);
        assert_invalid(&h, "z");
        let mut h = H::new();
        h.list(9, &["w"]);
        h.publish(1, "w", "a");
        assert_invalid(&h, "w");
    }

    #[test]
    fn stale_read_is_not_linearizable() {
        let mut h = H::new();
        h.publish(1, "k", "a").override_(1, "k", "b").get(2, "k", Some("a"));
        let a = assert_invalid(&h, "k");
        assert!(a.explanation.contains("read \"a\""), "{}", a.explanation);
        assert!(a.explanation.contains("only be \"b\""), "{}", a.explanation);
    }

    #[test]
    fn lost_write_is_not_linearizable() {
        let mut h = H::new();
        h.publish(1, "k", "a").get(2, "k", None);
        let a = assert_invalid(&h, "k");
        assert!(a.explanation.contains("read absent"), "{}", a.explanation);
    }

    #[test]
    fn two_acknowledged_publishes_without_unpublish() {
        let mut h = H::new();
        h.publish(1, "k", "a").publish(2, "k", "b");
        let a = assert_invalid(&h, "k");
        assert!(a.explanation.contains("already published"), "{}", a.explanation);
    }

    #[test]
    fn read_of_a_value_never_written() {
        let mut h = H::new();
        h.publish(1, "k", "a").get(2, "k", Some("zzz"));
        let a = assert_invalid(&h, "k");
        assert!(a.explanation.contains("ever wrote"), "{}", a.explanation);
    }

    #[test]
    fn pathological_key_is_unknown_within_budget() {
        // Many concurrent unknown overrides with reads that cannot all be explained
        // force an exponential search.
        let mut h = H::new();
        for p in 0..40u64 {
            h.invoke(p, Override, "k", Some(&format!("v{p}"))).info(p);
        }
        for r in 0..40u64 {
            h.get(100, "k", Some(&format!("v{}", (r * 7) % 40)));
        }
        h.get(100, "k", Some("never"));
        let options = CheckOptions {
            time_budget: Duration::from_millis(200),
            ..CheckOptions::default()
        };
        let started = Instant::now();
        let v = check(&h.history(), &options);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(v.validity, Validity::Unknown, "{v:#?}");
        assert_eq!(v.stats["keys_unknown"], 1);
        assert_eq!(v.anomalies[0].kind, "undecided");
    }

    /// Whether some order of `ops` respecting real time is valid, by brute force.
    fn brute_force(ops: &[KeyOp]) -> bool {
        fn go(ops: &[KeyOp], done: &mut Vec<bool>, state: Value) -> bool {
            if done.iter().all(|&d| d) {
                return true;
            }
            for i in 0..ops.len() {
                if done[i] {
                    continue;
                }
                // `i` may go next only if no pending op completed strictly before `i` was invoked.
                if (0..ops.len()).any(|j| !done[j] && j != i && ops[j].ret < ops[i].call) {
                    continue;
                }
                if let Some(next) = step(state, ops[i].input) {
                    done[i] = true;
                    if go(ops, done, next) {
                        return true;
                    }
                    done[i] = false;
                }
            }
            false
        }
        go(ops, &mut vec![false; ops.len()], 0)
    }

    #[test]
    fn search_agrees_with_brute_force() {
        let mut rng = crate::check::testing::Rng::new(3);
        let (mut valid, mut invalid) = (0, 0);
        let rounds: usize = std::env::var("ROUNDS").map_or(3000, |r| r.parse().unwrap());
        let max_n: u64 = std::env::var("MAX_N").map_or(7, |r| r.parse().unwrap());
        for _ in 0..rounds {
            let n = 1 + rng.below(max_n) as usize;
            let ops: Vec<KeyOp> = (0..n)
                .map(|i| {
                    let call = rng.below(12);
                    let value = rng.below(3) as Value;
                    let certain = rng.below(4) != 0;
                    let input = match rng.below(6) {
                        0 => Input::Publish {
                            value: value.max(1),
                            certain,
                        },
                        1 => Input::Override { value: value.max(1) },
                        2 => Input::Unpublish { certain },
                        3 => Input::Exists(rng.below(2) == 0),
                        _ => Input::Read { value },
                    };
                    let total = !matches!(input, Input::Read { .. } | Input::Exists(_))
                        && !matches!(
                            input,
                            Input::Publish { certain: true, .. } | Input::Unpublish { certain: true }
                        );
                    let ret = if total && rng.below(3) == 0 {
                        u64::MAX
                    } else {
                        call + rng.below(6)
                    };
                    KeyOp {
                        call,
                        ret,
                        input,
                        source: i,
                    }
                })
                .collect();
            let expected = brute_force(&ops);
            let got = search(&ops, None, usize::MAX);
            match (&got, expected) {
                (SearchResult::Linearizable { .. }, true) => valid += 1,
                (SearchResult::Violation { .. }, false) => invalid += 1,
                _ => panic!("{ops:#?}: search {got:?}, brute force {expected}"),
            }
        }
        assert!(valid > 500 && invalid > 500, "{valid} {invalid}");
    }

    /// Per key: linearizable or not, searching with or without dropping redundant reads.
    fn decide(paired: &Paired, compress: bool) -> Vec<(String, bool)> {
        build_problems(paired, compress)
            .iter()
            .map(|p| {
                let ok =
                    p.direct.is_none() && matches!(search(&p.ops, None, usize::MAX), SearchResult::Linearizable { .. });
                (p.key.to_string(), ok)
            })
            .collect()
    }

    #[test]
    fn dropping_redundant_list_reads_is_exact() {
        let mut rng = crate::check::testing::Rng::new(5);
        let (mut invalid, mut dropped) = (0, 0);
        for seed in 1..1500 {
            let mut history = crate::check::testing::synthetic_with(2, 12, 4, 2, 20, 30, seed);
            // Flip one list's view of one name, or one get, now and then.
            for _ in 0..rng.below(4) {
                let i = rng.below(history.len() as u64) as usize;
                let op = &mut history[i];
                match (op.kind, op.f) {
                    (crate::history::OpType::Ok, List) => {
                        let names = op.names.as_mut().unwrap();
                        let name = format!("k{}", rng.below(2));
                        match names.iter().position(|n| *n == name) {
                            Some(p) => {
                                names.remove(p);
                            }
                            None => names.push(name),
                        }
                    }
                    (crate::history::OpType::Ok, Get) => op.value = None,
                    _ => {}
                }
            }
            let paired = paired::pair(&history);
            let exact = decide(&paired, false);
            assert_eq!(decide(&paired, true), exact, "seed {seed}");
            invalid += exact.iter().filter(|(_, ok)| !ok).count();
            let reads = |compress| {
                build_problems(&paired, compress)
                    .iter()
                    .map(|p| p.list_reads)
                    .sum::<usize>()
            };
            dropped += reads(false) - reads(true);
        }
        assert!(invalid > 100 && dropped > 1000, "{invalid} {dropped}");
    }

    #[test]
    fn malformed_history_does_not_panic() {
        let mut h = H::new();
        h.publish(1, "k", "a");
        h.ok_get(7, Some("a")); // a completion without invoke
        h.get(2, "k", Some("a"));
        let v = run(&h);
        assert_eq!(v.validity, Validity::Unknown, "{v:#?}");
        assert!(v.anomalies.iter().any(|a| a.kind == "malformed-history"));
    }
}
