//! The least-recently-used order of in-memory chunks: the order in which they spill.

use std::collections::BTreeMap;

use foldhash::HashMap;

use crate::ChunkKey;

/// In-memory chunks ordered by last use, oldest first.
///
/// Every use takes a fresh tick from a counter that only grows, so ticks are unique and the
/// order is total and deterministic (no clock involved).
#[derive(Debug, Default)]
pub(crate) struct LruOrder {
    /// Keys by the tick of their last use: iterating it yields the spill order.
    keys_by_tick: BTreeMap<u64, ChunkKey>,
    /// Each key's current tick, to find (and move) it in `keys_by_tick`.
    tick_by_key: HashMap<ChunkKey, u64>,
    /// The next tick to hand out.
    next_tick: u64,
}

impl LruOrder {
    /// Marks `key` as the most recently used (adding it if absent).
    pub(crate) fn touch(&mut self, key: &ChunkKey) {
        let tick = self.next_tick;
        self.next_tick += 1;
        if let Some(previous_tick) = self.tick_by_key.insert(key.clone(), tick) {
            self.keys_by_tick.remove(&previous_tick);
        }
        self.keys_by_tick.insert(tick, key.clone());
        debug_assert_eq!(self.keys_by_tick.len(), self.tick_by_key.len());
    }

    /// Forgets `key`; returns whether it was there.
    pub(crate) fn remove(&mut self, key: &ChunkKey) -> bool {
        let Some(tick) = self.tick_by_key.remove(key) else {
            return false;
        };
        self.keys_by_tick.remove(&tick);
        debug_assert_eq!(self.keys_by_tick.len(), self.tick_by_key.len());
        true
    }

    /// The keys, least recently used first.
    pub(crate) fn oldest_first(&self) -> impl Iterator<Item = &ChunkKey> {
        self.keys_by_tick.values()
    }

    /// Whether `key` is in the order.
    pub(crate) fn contains(&self, key: &ChunkKey) -> bool {
        self.tick_by_key.contains_key(key)
    }

    /// How many keys are in the order.
    pub(crate) fn len(&self) -> usize {
        self.tick_by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ChunkKey {
        ChunkKey::parse(text).expect("valid key")
    }

    /// A touch moves a key to the young end, so the spill order is by last use, not by insertion.
    #[test]
    fn touch_moves_a_key_to_the_young_end() {
        let mut order = LruOrder::default();
        for name in ["a", "b", "c"] {
            order.touch(&key(name));
        }
        order.touch(&key("a"));
        let names: Vec<&str> = order.oldest_first().map(ChunkKey::as_str).collect();
        assert_eq!(names, ["b", "c", "a"]);

        assert!(order.remove(&key("c")));
        assert!(!order.remove(&key("c")));
        assert!(!order.contains(&key("c")));
        assert_eq!(order.len(), 2);
        let names: Vec<&str> = order.oldest_first().map(ChunkKey::as_str).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
