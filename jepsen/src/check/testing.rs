//! A small builder to write test histories concisely.

use std::collections::HashMap;

use crate::history::{Op, OpFn, OpType};

/// A history under construction; every event is 1 ms after the previous one.
#[derive(Debug, Default)]
pub(crate) struct H {
    ops: Vec<Op>,
    pending: HashMap<u64, (OpFn, Option<String>, Option<String>)>,
    final_phase: bool,
}

impl H {
    /// An empty history.
    pub fn new() -> Self {
        H::default()
    }

    /// The events so far.
    pub fn history(&self) -> Vec<Op> {
        self.ops.clone()
    }

    /// Marks every following event as part of the final phase.
    pub fn final_phase(&mut self) -> &mut Self {
        self.final_phase = true;
        self
    }

    fn push(
        &mut self,
        process: u64,
        kind: OpType,
        f: OpFn,
        key: Option<String>,
        value: Option<String>,
        names: Option<Vec<String>>,
    ) -> &mut Self {
        let index = self.ops.len() as u64;
        self.ops.push(Op {
            index,
            time_ns: (index + 1) * 1_000_000,
            process,
            kind,
            f,
            key,
            value,
            names,
            error: None,
            is_final: self.final_phase,
            extra: Default::default(),
        });
        self
    }

    /// Invokes `f` on `key` (writes take `value`).
    pub fn invoke(&mut self, process: u64, f: OpFn, key: &str, value: Option<&str>) -> &mut Self {
        let key = Some(key.to_string());
        let value = value.map(str::to_string);
        self.pending.insert(process, (f, key.clone(), value.clone()));
        self.push(process, OpType::Invoke, f, key, value, None)
    }

    /// Invokes a list.
    pub fn invoke_list(&mut self, process: u64) -> &mut Self {
        self.pending.insert(process, (OpFn::List, None, None));
        self.push(process, OpType::Invoke, OpFn::List, None, None, None)
    }

    fn complete(
        &mut self,
        process: u64,
        kind: OpType,
        read: Option<Option<&str>>,
        names: Option<Vec<String>>,
    ) -> &mut Self {
        let (f, key, value) = self.pending.remove(&process).unwrap_or((OpFn::Get, None, None));
        let value = match read {
            Some(v) => v.map(str::to_string),
            None if f.is_write() => value,
            None => None,
        };
        self.push(process, kind, f, key, value, names)
    }

    /// Completes the process's operation with `ok` (a get reads nothing; see [`H::ok_get`]).
    pub fn ok(&mut self, process: u64) -> &mut Self {
        self.complete(process, OpType::Ok, None, None)
    }

    /// Completes the process's get with `ok`, having read `value`.
    pub fn ok_get(&mut self, process: u64, value: Option<&str>) -> &mut Self {
        self.complete(process, OpType::Ok, Some(value), None)
    }

    /// Completes the process's list with `ok`, having read `names`.
    pub fn ok_list(&mut self, process: u64, names: &[&str]) -> &mut Self {
        let names = names.iter().map(|n| n.to_string()).collect();
        self.complete(process, OpType::Ok, None, Some(names))
    }

    /// Completes the process's operation with `fail`.
    pub fn fail(&mut self, process: u64) -> &mut Self {
        self.complete(process, OpType::Fail, None, None)
    }

    /// Completes the process's operation with `info`.
    pub fn info(&mut self, process: u64) -> &mut Self {
        self.complete(process, OpType::Info, None, None)
    }

    /// An acknowledged publish, alone.
    pub fn publish(&mut self, process: u64, key: &str, value: &str) -> &mut Self {
        self.invoke(process, OpFn::Publish, key, Some(value)).ok(process)
    }

    /// An acknowledged override, alone.
    pub fn override_(&mut self, process: u64, key: &str, value: &str) -> &mut Self {
        self.invoke(process, OpFn::Override, key, Some(value)).ok(process)
    }

    /// An acknowledged unpublish, alone.
    pub fn unpublish(&mut self, process: u64, key: &str) -> &mut Self {
        self.invoke(process, OpFn::Unpublish, key, None).ok(process)
    }

    /// A get, alone, reading `value`.
    pub fn get(&mut self, process: u64, key: &str, value: Option<&str>) -> &mut Self {
        self.invoke(process, OpFn::Get, key, None).ok_get(process, value)
    }

    /// A list, alone, reading `names`.
    pub fn list(&mut self, process: u64, names: &[&str]) -> &mut Self {
        self.invoke_list(process).ok_list(process, names)
    }
}

/// A tiny deterministic generator (xorshift64*).
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A linearizable history produced by simulating `processes` concurrent clients on a
/// true register per key: every operation is invoked, takes effect at a later step
/// (its linearization point) and completes later still, while other clients interleave.
/// About `keys × ops_per_key` operations, three keys active at a time, ~3% lists and
/// ~3% writes completing `info` (applied or not), then a final phase (a list and a get
/// per key).
pub(crate) fn synthetic(keys: usize, ops_per_key: usize, processes: usize, seed: u64) -> Vec<Op> {
    synthetic_with(keys, ops_per_key, processes, 3, 3, 3, seed)
}

/// [`synthetic`] with `active` keys at a time, `info_percent`% of writes completing
/// `info` and `lists_percent`% of operations lists.
pub(crate) fn synthetic_with(
    keys: usize,
    ops_per_key: usize,
    processes: usize,
    active: u64,
    info_percent: u64,
    lists_percent: u64,
    seed: u64,
) -> Vec<Op> {
    struct Pending {
        f: OpFn,
        key: Option<String>,
        value: Option<String>,
        done: Option<(OpType, Option<String>, Option<Vec<String>>)>,
    }
    let mut rng = Rng::new(seed);
    let mut state: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut time: u64 = 0;
    let mut clients: Vec<(u64, Option<Pending>)> = (0..processes as u64).map(|p| (p, None)).collect();
    let mut next_process = processes as u64;
    let total = keys * ops_per_key;
    let mut started = 0usize;
    #[allow(clippy::too_many_arguments)]
    fn event(
        ops: &mut Vec<Op>,
        time: u64,
        process: u64,
        kind: OpType,
        p: &Pending,
        value: Option<String>,
        names: Option<Vec<String>>,
        is_final: bool,
    ) {
        let index = ops.len() as u64;
        ops.push(Op {
            index,
            time_ns: time,
            process,
            kind,
            f: p.f,
            key: p.key.clone(),
            value,
            names,
            error: None,
            is_final,
            extra: Default::default(),
        });
    }
    loop {
        let busy = clients.iter().any(|c| c.1.is_some());
        if started >= total && !busy {
            break;
        }
        time += 100_000 + rng.below(900_000);
        let c = rng.below(clients.len() as u64) as usize;
        let process = clients[c].0;
        match clients[c].1.take() {
            None if started < total => {
                let key_index = (started / ops_per_key + rng.below(active) as usize).min(keys - 1);
                let key = format!("k{key_index}");
                // Lists take the top `lists_percent`, the rest is spread over 0..97.
                let roll = rng.below(100);
                let roll = if roll >= 100 - lists_percent {
                    99
                } else {
                    roll * 97 / (100 - lists_percent)
                };
                let f = match roll {
                    0..=39 => OpFn::Get,
                    40..=61 => OpFn::Publish,
                    62..=71 => OpFn::Override,
                    72..=96 => OpFn::Unpublish,
                    _ => OpFn::List,
                };
                let value = f.is_write().then(|| format!("{process}-{started}"));
                let value = if f == OpFn::Unpublish { None } else { value };
                let p = Pending {
                    f,
                    key: (f != OpFn::List).then_some(key),
                    value: value.clone(),
                    done: None,
                };
                event(&mut ops, time, process, OpType::Invoke, &p, value, None, false);
                started += 1;
                clients[c].1 = Some(p);
            }
            None => {}
            Some(mut p) if p.done.is_none() => {
                // The linearization point.
                let key = p.key.clone().unwrap_or_default();
                let unknown = p.f.is_write() && rng.below(100) < info_percent;
                let apply = !unknown || rng.below(2) == 0;
                let current = state.get(&key).cloned();
                let (kind, value, names) = match p.f {
                    OpFn::Get => (OpType::Ok, current, None),
                    OpFn::List => (OpType::Ok, None, Some(state.keys().cloned().collect())),
                    OpFn::Publish if current.is_some() => (OpType::Fail, p.value.clone(), None),
                    OpFn::Unpublish if current.is_none() => (OpType::Fail, None, None),
                    OpFn::Publish | OpFn::Override => {
                        if apply {
                            state.insert(key, p.value.clone().unwrap_or_default());
                        }
                        (OpType::Ok, p.value.clone(), None)
                    }
                    OpFn::Unpublish => {
                        if apply {
                            state.remove(&key);
                        }
                        (OpType::Ok, None, None)
                    }
                    other => unreachable!("the synthetic histories have no {other:?}"),
                };
                let kind = if unknown { OpType::Info } else { kind };
                p.done = Some((kind, value, names));
                clients[c].1 = Some(p);
            }
            Some(p) => {
                let Some((kind, value, names)) = p.done.clone() else {
                    unreachable!()
                };
                event(&mut ops, time, process, kind, &p, value, names, false);
                if kind == OpType::Info {
                    clients[c].0 = next_process;
                    next_process += 1;
                }
            }
        }
    }
    // The final phase.
    let reader = next_process;
    let list = Pending {
        f: OpFn::List,
        key: None,
        value: None,
        done: None,
    };
    time += 1_000_000;
    event(&mut ops, time, reader, OpType::Invoke, &list, None, None, true);
    time += 1_000_000;
    event(
        &mut ops,
        time,
        reader,
        OpType::Ok,
        &list,
        None,
        Some(state.keys().cloned().collect()),
        true,
    );
    for k in 0..keys {
        let key = format!("k{k}");
        let get = Pending {
            f: OpFn::Get,
            key: Some(key.clone()),
            value: None,
            done: None,
        };
        time += 1_000_000;
        event(&mut ops, time, reader, OpType::Invoke, &get, None, None, true);
        time += 1_000_000;
        event(
            &mut ops,
            time,
            reader,
            OpType::Ok,
            &get,
            state.get(&key).cloned(),
            None,
            true,
        );
    }
    ops
}
