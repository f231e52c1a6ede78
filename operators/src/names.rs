//! The name dictionary that travels beside the stream: events carry ids, sinks want names.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::event::{stable_hash, DeviceId, MetricId};
use crate::hash::{IdHashMap, IdHashSet};

/// Id → name for one kind of name (devices or metrics), shared by all workers of a process.
#[derive(Clone, Debug, Default)]
pub struct Names {
    inner: Arc<RwLock<IdHashMap<u64, Arc<str>>>>,
    /// Names recorded since the last [`Names::drain_new`], for processes that must tell
    /// their peers (cluster mode).
    journal: Arc<Mutex<Vec<Arc<str>>>>,
    /// Set when nobody drains the journal (one process): new names are not journaled.
    unjournaled: Arc<AtomicBool>,
}

impl Names {
    /// Records `name` under `id`; returns `false` if `id` already named something else
    /// (a 64-bit hash collision, which the caller should report).
    pub fn insert(&self, id: u64, name: &str) -> bool {
        let mut map = crate::sync::write(&self.inner);
        match map.get(&id) {
            Some(existing) => existing.as_ref() == name,
            None => {
                let name: Arc<str> = Arc::from(name);
                map.insert(id, name.clone());
                drop(map);
                if !self.unjournaled.load(Ordering::Relaxed) {
                    crate::lock(&self.journal).push(name);
                }
                true
            }
        }
    }

    /// Stops journaling new names (a process with no peers to tell).
    pub fn stop_journal(&self) {
        self.unjournaled.store(true, Ordering::Relaxed);
        crate::lock(&self.journal).clear();
    }

    /// Takes the names recorded since the last call.
    pub fn drain_new(&self) -> Vec<Arc<str>> {
        std::mem::take(&mut *crate::lock(&self.journal))
    }

    /// The name recorded for `id`.
    pub fn get(&self, id: u64) -> Option<Arc<str>> {
        let map = crate::sync::read(&self.inner);
        map.get(&id).cloned()
    }

    /// How many names are recorded.
    pub fn len(&self) -> usize {
        crate::sync::read(&self.inner).len()
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

/// Worker-local copies of names, so making alerts does not contend on the shared dictionary.
/// A name cached while still unknown (shown as its hex id) stays so; [`crate::ResolveNames`]
/// fills those in downstream.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    devices: IdHashMap<u64, Arc<str>>,
    metrics: IdHashMap<u64, Arc<str>>,
}

impl NameCache {
    pub(crate) fn device(&mut self, id: DeviceId, dict: &Dictionary) -> Arc<str> {
        self.devices.entry(id.0).or_insert_with(|| dict.device_name(id)).clone()
    }

    pub(crate) fn metric(&mut self, id: MetricId, dict: &Dictionary) -> Arc<str> {
        self.metrics.entry(id.0).or_insert_with(|| dict.metric_name(id)).clone()
    }
}

const CACHE: usize = 4096;

/// Two words that, with the length, determine a name of 1-16 bytes: overlapping loads
/// instead of copying into a buffer (which stalls on store forwarding).
#[inline]
fn pack(name: &[u8]) -> (u64, u64) {
    let n = name.len();
    let word = |at: usize| u64::from_le_bytes(name[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| u64::from(u32::from_le_bytes(name[at..at + 4].try_into().unwrap_or_default()));
    if n >= 8 {
        (word(0), word(n - 8))
    } else if n >= 4 {
        (half(0) | (half(n - 4) << 32), 0)
    } else {
        (name.iter().fold(0u64, |acc, &c| (acc << 8) | u64::from(c)), 0)
    }
}
/// Ids are stored xor this mask so that a zeroed slot (id field 0) can never match.
const ID_MASK: u64 = 0xA5A5_5A5A_A5A5_5A5A;

/// A worker-local front for a [`Names`]: hashes a name and takes the shared lock only the
/// first time this worker sees it, so parsing millions of events costs one hash-set probe each.
#[derive(Debug)]
pub struct Interner {
    shared: Names,
    seen: IdHashSet<u64>,
    /// Two-way cache of recently seen short names (≤ 16 bytes, packed into two words)
    /// and their ids: the common case costs two compares instead of a hash of the name.
    recent: Box<[(u64, u64, u64); CACHE]>,
    collisions: u64,
}

impl Interner {
    /// A local front for `shared`.
    pub fn new(shared: Names) -> Self {
        // Length 0 marks an empty slot (empty names are rejected before interning).
        Interner { shared, seen: IdHashSet::default(), recent: Box::new([(0, 0, 0); CACHE]), collisions: 0 }
    }

    /// The id of `name`, recording the name on first sight. Only valid UTF-8 names are
    /// recorded; the check runs once per new name, not once per event.
    #[inline]
    pub fn intern(&mut self, name: &[u8]) -> Result<u64, std::str::Utf8Error> {
        if name.is_empty() || name.len() > 16 {
            return self.intern_slow(name);
        }
        let (a, b) = pack(name);
        let tag = ((name.len() as u64) << 56) ^ b;
        // Two-way: a name is in one of a pair of slots, the more recent first, so two names
        // hashing to the same pair (1,000 devices in 4,096 slots have dozens of such pairs)
        // do not evict each other on every event.
        let slot =
            ((a ^ tag.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize & (CACHE - 2);
        for entry in &self.recent[slot..slot + 2] {
            if entry.0 == a && entry.1 == tag && entry.2 != 0 {
                return Ok(entry.2 ^ ID_MASK);
            }
        }
        let id = self.intern_slow(name)?;
        self.recent[slot + 1] = self.recent[slot];
        self.recent[slot] = (a, tag, id ^ ID_MASK);
        Ok(id)
    }

    fn intern_slow(&mut self, name: &[u8]) -> Result<u64, std::str::Utf8Error> {
        let id = stable_hash(name);
        if !self.seen.contains(&id) {
            let text = std::str::from_utf8(name)?;
            self.seen.insert(id);
            if !self.shared.insert(id, text) {
                self.collisions += 1;
            }
        }
        Ok(id)
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
        let a = local.intern(b"dev-1").unwrap();
        let b = local.intern(b"dev-1").unwrap();
        assert!(local.intern(b"d\xff").is_err());
        assert!(local.intern(b"d\xff").is_err(), "invalid names are never cached");
        assert_eq!(a, b);
        assert_eq!(dict.device_name(DeviceId(a)).as_ref(), "dev-1");
        assert_eq!(dict.devices.len(), 1);
        assert!(dict.device_name(DeviceId(7)).starts_with('#'));
    }

    #[test]
    fn cached_ids_equal_the_stable_hash() {
        let mut local = Interner::new(Names::default());
        let mut names: Vec<Vec<u8>> = (0..20_000).map(|i| format!("dev-{i}").into_bytes()).collect();
        names.extend([
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"0123456789abcdef".to_vec(),
            b"0123456789abcdefg".to_vec(),
        ]);
        for _ in 0..2 {
            for n in &names {
                assert_eq!(local.intern(n).unwrap(), stable_hash(n), "{}", String::from_utf8_lossy(n));
            }
        }
    }

    #[test]
    fn collision_is_reported() {
        let names = Names::default();
        assert!(names.insert(1, "a"));
        assert!(names.insert(1, "a"));
        assert!(!names.insert(1, "b"));
    }
}
