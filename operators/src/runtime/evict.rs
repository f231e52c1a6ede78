//! State that ends: per-key state (a device's de-duplication window, a series' model history,
//! a device model, a rule's pending episode) is dropped once its key has been idle for a set
//! time in event time, so a fleet with churn does not grow without bound. A key that comes back
//! starts fresh.
//!
//! Each operator keeps the newest event time it has seen and, every quarter of the idle time
//! of event time, sweeps its map once (a sweep is one pass over the map: amortised over a
//! quarter of the idle time of input, never per event).

use std::collections::HashMap;
use std::hash::BuildHasher;

/// How long per-key state may sit idle, in event time, before it is dropped (`None`: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateIdle(pub Option<u64>);

/// Sweeps one operator's per-key state (see the module documentation).
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Evictor {
    idle_ms: Option<u64>,
    newest: u64,
    next_sweep: u64,
}

impl Default for Evictor {
    /// Never evicts.
    fn default() -> Self {
        Evictor::new(StateIdle(None))
    }
}

impl Evictor {
    /// An evictor for state idle longer than `idle`.
    pub fn new(idle: StateIdle) -> Self {
        Evictor { idle_ms: idle.0, newest: 0, next_sweep: 0 }
    }

    /// Whether state last seen at `last` is idle past the idle time at event time `now` (a key
    /// that comes back after its idle time starts fresh even before a sweep has dropped it).
    #[inline]
    pub fn expired(&self, last: u64, now: u64) -> bool {
        self.idle_ms.is_some_and(|idle| now.saturating_sub(last) > idle)
    }

    /// Notes an event time the operator has seen.
    #[inline]
    pub fn saw(&mut self, ts: u64) {
        if ts > self.newest {
            self.newest = ts;
        }
    }

    /// The newest event time seen and the cut-off below which state is idle, when a sweep is
    /// due (and marks it done); for state kept in something other than one map.
    pub fn due(&mut self) -> Option<u64> {
        let idle = self.idle_ms?;
        if self.newest < self.next_sweep || self.newest < idle {
            return None;
        }
        self.next_sweep = self.newest.saturating_add((idle / 4).max(1));
        Some(self.newest - idle)
    }

    /// When a sweep is due: drops every entry of `map` last seen (`last`) more than the idle
    /// time before the newest event time seen; `last` returns `None` for an entry that must stay
    /// (an open alert). Returns the keys dropped (empty when no sweep was due).
    pub fn sweep<K: Clone + Eq + std::hash::Hash, V, S: BuildHasher>(
        &mut self,
        map: &mut HashMap<K, V, S>,
        last: impl Fn(&V) -> Option<u64>,
    ) -> Vec<K> {
        let Some(cutoff) = self.due() else { return Vec::new() };
        let mut gone = Vec::new();
        map.retain(|k, v| match last(v) {
            Some(t) if t < cutoff => {
                gone.push(k.clone());
                false
            }
            _ => true,
        });
        // Give memory back after a burst of keys that went quiet.
        if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
            map.shrink_to_fit();
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_entries_go_and_active_or_pinned_ones_stay() {
        let mut e = Evictor::new(StateIdle(Some(1_000)));
        let mut map: HashMap<u32, Option<u64>> = HashMap::new();
        map.insert(1, Some(100)); // idle
        map.insert(2, Some(1_500)); // recent
        map.insert(3, None); // pinned (an open alert)
        e.saw(2_000);
        let mut gone = e.sweep(&mut map, |v| *v);
        gone.sort_unstable();
        assert_eq!(gone, vec![1]);
        assert_eq!(map.len(), 2);
        // The next sweep waits a quarter of the idle time of event time.
        map.insert(4, Some(0));
        e.saw(2_100);
        assert!(e.sweep(&mut map, |v| *v).is_empty());
        e.saw(2_300);
        assert_eq!(e.sweep(&mut map, |v| *v), vec![4]);
    }

    #[test]
    fn a_key_back_after_its_idle_time_is_expired() {
        let e = Evictor::new(StateIdle(Some(1_000)));
        assert!(!e.expired(5_000, 6_000));
        assert!(e.expired(5_000, 6_001));
        assert!(!Evictor::new(StateIdle(None)).expired(0, u64::MAX));
    }

    #[test]
    fn without_an_idle_time_nothing_goes() {
        let mut e = Evictor::new(StateIdle(None));
        let mut map: HashMap<u32, Option<u64>> = HashMap::new();
        map.insert(1, Some(0));
        e.saw(u64::MAX);
        assert!(e.sweep(&mut map, |v| *v).is_empty());
        assert_eq!(map.len(), 1);
    }
}
