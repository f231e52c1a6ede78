//! The name dictionary that travels beside the stream: events carry ids, sinks want names.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::event::{stable_hash, DeviceId, MetricId};
use crate::hash::IdHashSet;

/// Id → name for one kind of name (devices or metrics), shared by all workers of a process.
#[derive(Clone, Debug, Default)]
pub struct Names {
    inner: Arc<RwLock<HashMap<u64, Arc<str>>>>,
}

impl Names {
    /// Records `name` under `id`; returns `false` if `id` already named something else
    /// (a 64-bit hash collision, which the caller should report).
    pub fn insert(&self, id: u64, name: &str) -> bool {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match map.get(&id) {
            Some(existing) => existing.as_ref() == name,
            None => {
                map.insert(id, Arc::from(name));
                true
            }
        }
    }

    /// The name recorded for `id`.
    pub fn get(&self, id: u64) -> Option<Arc<str>> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&id).cloned()
    }

    /// How many names are recorded.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no name is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Device and metric names of one process.
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    /// Device names.
    pub devices: Names,
    /// Metric names.
    pub metrics: Names,
}

impl Dictionary {
    /// Registers `name` as a device and returns its id.
    pub fn device(&self, name: &str) -> DeviceId {
        let id = DeviceId::of(name);
        self.devices.insert(id.0, name);
        id
    }

    /// Registers `name` as a metric and returns its id.
    pub fn metric(&self, name: &str) -> MetricId {
        let id = MetricId::of(name);
        self.metrics.insert(id.0, name);
        id
    }

    /// The device's name, or its id in hex when no source has named it.
    pub fn device_name(&self, id: DeviceId) -> Arc<str> {
        self.devices.get(id.0).unwrap_or_else(|| Arc::from(format!("#{:016x}", id.0)))
    }

    /// The metric's name, or its id in hex.
    pub fn metric_name(&self, id: MetricId) -> Arc<str> {
        self.metrics.get(id.0).unwrap_or_else(|| Arc::from(format!("#{:016x}", id.0)))
    }
}

/// A worker-local front for a [`Names`]: hashes a name and takes the shared lock only the
/// first time this worker sees it, so parsing millions of events costs one hash-set probe each.
#[derive(Debug)]
pub struct Interner {
    shared: Names,
    seen: IdHashSet<u64>,
    /// Direct-mapped cache of recently seen ids, so the common case skips the hash set.
    recent: Box<[u64; 4096]>,
    collisions: u64,
}

impl Interner {
    /// A local front for `shared`.
    pub fn new(shared: Names) -> Self {
        // 0 marks an empty slot; an id of 0 just always takes the slow path.
        Interner { shared, seen: IdHashSet::default(), recent: Box::new([0; 4096]), collisions: 0 }
    }

    /// The id of `name`, recording the name on first sight.
    #[inline]
    pub fn intern(&mut self, name: &[u8]) -> u64 {
        let id = stable_hash(name);
        let slot = &mut self.recent[(id & 4095) as usize];
        if *slot == id {
            return id;
        }
        *slot = id;
        if !self.seen.contains(&id) {
            self.seen.insert(id);
            let text = String::from_utf8_lossy(name);
            if !self.shared.insert(id, &text) {
                self.collisions += 1;
            }
        }
        id
    }

    /// Names whose hash collided with a different, earlier name.
    pub fn collisions(&self) -> u64 {
        self.collisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_registers_once_and_resolves() {
        let dict = Dictionary::default();
        let mut local = Interner::new(dict.devices.clone());
        let a = local.intern(b"dev-1");
        let b = local.intern(b"dev-1");
        assert_eq!(a, b);
        assert_eq!(dict.device_name(DeviceId(a)).as_ref(), "dev-1");
        assert_eq!(dict.devices.len(), 1);
        assert!(dict.device_name(DeviceId(7)).starts_with('#'));
    }

    #[test]
    fn collision_is_reported() {
        let names = Names::default();
        assert!(names.insert(1, "a"));
        assert!(names.insert(1, "a"));
        assert!(!names.insert(1, "b"));
    }
}
