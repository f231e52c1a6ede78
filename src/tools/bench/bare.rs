//! Bare loops: the work of a W workload without the engine, the limit that `sensorflow bench`
//! divides the engine's speed by (issue 16). Each gives the same windows as the engine (the
//! bench checks the count) and counts the windows the W rule (`max > 80`) finds.
//!
//! - [`w2`]: the JSON file already in memory, split at line boundaries over `threads`; each
//!   thread parses its lines with a parser specialised to the W2 shape
//!   (`{"device":…,"metric":…,"ts":…,"value":…,"seq":…}`; anything else is an error, not a
//!   fallback) and aggregates 1-s tumbling windows per series (count, sum, sum of squares,
//!   min, max, first, last) in a flat open-addressed table keyed by the names' 64-bit hashes
//!   (the engine's event ids), without allocating per event.
//! - [`w1`]: the same aggregation over decoded events already in memory, keyed by the events'
//!   ids (no decode).
//!
//! A window that straddles two threads' parts is merged after the threads end, so the window
//! count does not depend on the thread count. Input is taken to be in time order per series
//! (as every W dataset is): an event of another window closes the series' open window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sensorflow_operators::{stable_hash, Event};

use crate::Error;

/// The W rule's threshold (`temperature max > 80`).
const OVER: f64 = 80.0;
/// The W windows' length, ms.
const WINDOW_MS: u64 = 1000;

/// What one bare run computed, and in what time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BareRun {
    /// Events aggregated.
    pub events: u64,
    /// Windows closed (series × window).
    pub windows: u64,
    /// Windows whose maximum is over the rule's threshold.
    pub over: u64,
    /// Wall time, split and merge included.
    pub elapsed: Duration,
}

/// A window's running aggregate: what the engine's windows keep (mean and variance come from
/// the sums), though the W rule reads only the maximum.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // `first` is kept as the engine keeps it, and read by no W rule
struct Agg {
    count: u64,
    sum: f64,
    sumsq: f64,
    min: f64,
    max: f64,
    first: f64,
    last: f64,
}

impl Agg {
    fn new(v: f64) -> Self {
        Agg { count: 1, sum: v, sumsq: v * v, min: v, max: v, first: v, last: v }
    }

    #[inline]
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.sumsq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.last = v;
    }

    /// Adds the aggregate of the same window's later events.
    fn merge(&mut self, later: &Agg) {
        self.count += later.count;
        self.sum += later.sum;
        self.sumsq += later.sumsq;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
    }
}

/// One series' open window.
struct Slot {
    /// The hash the series is filed under.
    hash: u64,
    /// Identity: the device and metric ids (the hashes of their names).
    id: [u64; 2],
    window: u64,
    agg: Agg,
    /// The series' first window in this part: it may have begun in the part before.
    first: bool,
}

/// Tumbling windows per series over a flat table (open addressing, linear probing).
struct Table {
    index: Vec<u32>,
    slots: Vec<Slot>,
    windows: u64,
    over: u64,
    /// Windows that may continue in a neighbouring part: (slot, window, aggregate).
    edges: Vec<(u32, u64, Agg)>,
}

const EMPTY: u32 = u32::MAX;

impl Table {
    fn new() -> Self {
        Table { index: vec![EMPTY; 1 << 12], slots: Vec::new(), windows: 0, over: 0, edges: Vec::new() }
    }

    /// The slot of the series filed under `hash` that `same` recognises.
    #[inline]
    fn find(&self, hash: u64, same: impl Fn(&Slot) -> bool) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut i = (hash >> 20) as usize & mask;
        loop {
            let s = self.index[i];
            if s == EMPTY {
                return None;
            }
            let slot = &self.slots[s as usize];
            if slot.hash == hash && same(slot) {
                return Some(s as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// Files a new series under `hash`.
    fn insert(&mut self, hash: u64, id: [u64; 2]) -> usize {
        let n = self.slots.len();
        self.slots.push(Slot { hash, id, window: u64::MAX, agg: Agg::new(0.0), first: true });
        if self.slots.len() * 2 > self.index.len() {
            self.index = vec![EMPTY; self.index.len() * 2];
            for m in 0..self.slots.len() {
                self.file(m);
            }
        } else {
            self.file(n);
        }
        n
    }

    fn file(&mut self, n: usize) {
        let mask = self.index.len() - 1;
        let mut i = (self.slots[n].hash >> 20) as usize & mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = n as u32;
    }

    /// Adds `value` at `ts` to series `slot`'s window.
    #[inline]
    fn add(&mut self, slot: usize, ts: u64, value: f64) {
        let w = ts / WINDOW_MS;
        let s = &mut self.slots[slot];
        if s.window == w {
            s.agg.add(value);
            return;
        }
        let closed = std::mem::replace(&mut s.agg, Agg::new(value));
        let was = std::mem::replace(&mut s.window, w);
        if was == u64::MAX {
            return; // the slot was just made: nothing was open
        }
        if std::mem::replace(&mut s.first, false) {
            self.edges.push((slot as u32, was, closed));
        } else {
            self.windows += 1;
            self.over += u64::from(closed.max > OVER);
        }
    }

    /// The part's edge windows (its series' first and still open ones) keyed by `key`, and
    /// the counts of the windows wholly inside it.
    fn finish(mut self, key: impl Fn(&Slot) -> Vec<u8>) -> Part {
        for (n, s) in self.slots.iter().enumerate() {
            if s.window != u64::MAX {
                self.edges.push((n as u32, s.window, s.agg));
            }
        }
        let edges = self.edges.iter().map(|&(n, w, a)| (key(&self.slots[n as usize]), w, a)).collect();
        Part { windows: self.windows, over: self.over, edges, events: 0 }
    }
}

#[inline]
fn hash_id(id: [u64; 2]) -> u64 {
    (id[0] ^ id[1].rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One part's result.
struct Part {
    events: u64,
    windows: u64,
    over: u64,
    edges: Vec<(Vec<u8>, u64, Agg)>,
}

/// Merges the parts' edge windows (in part order, so first and last stay right) and adds up.
fn merge(parts: Vec<Part>, started: Instant) -> BareRun {
    let mut events = 0;
    let mut windows = 0;
    let mut over = 0;
    let mut open: HashMap<(Vec<u8>, u64), Agg> = HashMap::new();
    for p in parts {
        events += p.events;
        windows += p.windows;
        over += p.over;
        for (key, w, agg) in p.edges {
            open.entry((key, w)).and_modify(|a| a.merge(&agg)).or_insert(agg);
        }
    }
    windows += open.len() as u64;
    over += open.values().filter(|a| a.max > OVER).count() as u64;
    BareRun { events, windows, over, elapsed: started.elapsed() }
}

/// Runs `work` on each part, on threads of their own when there is more than one.
fn on_threads<P: Sync, R: Send>(parts: &[P], work: impl Fn(&P) -> R + Sync) -> Vec<R> {
    if parts.len() == 1 {
        return parts.iter().map(work).collect();
    }
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = parts.iter().map(|p| scope.spawn(move || work(p))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// W1's bare loop: windows over `events` (in memory) on `threads` threads.
pub fn w1(events: &[Event], threads: usize) -> BareRun {
    let started = Instant::now();
    let per = events.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<&[Event]> = events.chunks(per).collect();
    let results = on_threads(&parts, |part| {
        let mut t = Table::new();
        for e in part.iter() {
            let id = [e.device.0, e.metric.0];
            let hash = hash_id(id);
            let slot = t.find(hash, |s| s.id == id).unwrap_or_else(|| t.insert(hash, id));
            t.add(slot, e.ts, e.value);
        }
        let mut p = t.finish(id_bytes);
        p.events = part.len() as u64;
        p
    });
    merge(results, started)
}

/// W2's bare loop: parse and window the JSON lines in `bytes` on `threads` threads.
pub fn w2(bytes: &[u8], threads: usize) -> Result<BareRun, Error> {
    let started = Instant::now();
    let parts = split_lines(bytes, threads.max(1));
    let results = on_threads(&parts, |part| w2_part(part));
    let parts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(merge(parts, started))
}

/// `bytes` cut into about `n` parts, each ending at a line end.
fn split_lines(bytes: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..=n {
        let mut end = if i == n { bytes.len() } else { (bytes.len() * i / n).max(start) };
        if end < bytes.len() {
            end = memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |p| end + p + 1);
        }
        if end > start {
            parts.push(&bytes[start..end]);
        }
        start = end;
    }
    if parts.is_empty() {
        parts.push(bytes);
    }
    parts
}

/// One W2 line's fields: where its names are and its numbers.
struct Line<'a> {
    device: &'a [u8],
    metric: &'a [u8],
    ts: u64,
    value: f64,
}

/// The value of 8 ASCII digits read as one little-endian word, or `None` if any byte is not
/// a digit (SWAR: three multiply-and-mask steps instead of eight dependent ones).
#[inline]
fn eight_digits(word: u64) -> Option<u64> {
    let sub = word.wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows (high bit set in `sub`); one above '9' carries past 0x7F when
    // 0x46 is added.
    if (word.wrapping_add(0x4646_4646_4646_4646) | sub) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    let x = (sub.wrapping_mul(10) + (sub >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((x.wrapping_mul(10_000) + (x >> 32)) & 0xFFFF_FFFF)
}

/// Reads the unsigned integer at `b[i..]`: its value and the index after it. At most 19
/// digits (so it cannot overflow); eight at a time where they are.
#[inline]
fn uint(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut v: u64 = 0;
    while let Some(word) = b.get(i..i + 8) {
        let Some(eight) = eight_digits(u64::from_le_bytes(word.try_into().ok()?)) else { break };
        if i - start + 8 > 19 {
            return None;
        }
        v = v * 100_000_000 + eight;
        i += 8;
    }
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10) {
        if i - start >= 19 {
            return None;
        }
        v = v * 10 + u64::from(d);
        i += 1;
    }
    (i > start).then_some((v, i))
}

const POW10: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// Reads the decimal number (`-12.34`, no exponent) at `b[i..]`.
#[inline]
fn decimal(b: &[u8], mut i: usize) -> Option<(f64, usize)> {
    let negative = b.get(i) == Some(&b'-');
    i += usize::from(negative);
    let (int, mut j) = uint(b, i)?;
    let mut mantissa = int;
    let mut scale = 0;
    if b.get(j) == Some(&b'.') {
        let (frac, k) = uint(b, j + 1)?;
        scale = k - j - 1;
        mantissa = mantissa.checked_mul(10u64.checked_pow(scale as u32)?)?.checked_add(frac)?;
        j = k;
    }
    if mantissa >= 1 << 53 || scale >= POW10.len() {
        return None;
    }
    let v = mantissa as f64 / POW10[scale];
    Some((if negative { -v } else { v }, j))
}

/// `b[i..]` starts with `lit`: the index after it (a fixed-size compare, no `memcmp` call).
#[inline]
fn expect<const N: usize>(b: &[u8], i: usize, lit: &[u8; N]) -> Option<usize> {
    let s: &[u8; N] = b.get(i..i + N)?.try_into().ok()?;
    (s == lit).then_some(i + N)
}

/// The string's bytes from `b[i..]` up to its closing quote, and the quote's index: eight
/// bytes at a time (names are short, so this beats a `memchr` call).
#[inline]
fn string(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    let mut at = i;
    while let Some(word) = b.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?) ^ 0x2222_2222_2222_2222;
        let zero = x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
        if zero != 0 {
            let end = at + (zero.trailing_zeros() / 8) as usize;
            return Some((&b[i..end], end));
        }
        at += 8;
    }
    let end = at + memchr::memchr(b'"', b.get(at..)?)?;
    Some((&b[i..end], end))
}

/// Parses the W2-shaped line at `b[i..]`: the line and the index after its newline.
#[inline]
fn line(b: &[u8], i: usize) -> Option<(Line<'_>, usize)> {
    let i = expect(b, i, br#"{"device":""#)?;
    let (device, i) = string(b, i)?;
    let i = expect(b, i, br#"","metric":""#)?;
    let (metric, i) = string(b, i)?;
    let i = expect(b, i, br#"","ts":"#)?;
    let (ts, i) = uint(b, i)?;
    let i = expect(b, i, br#","value":"#)?;
    let (value, i) = decimal(b, i)?;
    let i = expect(b, i, br#","seq":"#)?;
    let (_seq, i) = uint(b, i)?;
    let i = expect(b, i, b"}")?;
    let i = match b.get(i) {
        Some(b'\n') => i + 1,
        None => i,
        Some(_) => return None,
    };
    Some((Line { device, metric, ts, value }, i))
}

/// One part of W2's bare loop. Series are told apart by the 64-bit hashes of their names,
/// as the engine's events carry them ([`stable_hash`]).
fn w2_part(b: &[u8]) -> Result<Part, Error> {
    let mut t = Table::new();
    let mut i = 0;
    let mut events = 0u64;
    while i < b.len() {
        let Some((l, next)) = line(b, i) else {
            let end = memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p).min(i + 200);
            return Err(Error::Runtime(format!(
                "bench: the W2 bare loop reads only lines of the W2 shape, not {:?}",
                String::from_utf8_lossy(&b[i..end])
            )));
        };
        let id = [stable_hash(l.device), stable_hash(l.metric)];
        let hash = hash_id(id);
        let slot = t.find(hash, |s| s.id == id).unwrap_or_else(|| t.insert(hash, id));
        t.add(slot, l.ts, l.value);
        events += 1;
        i = next;
    }
    let mut p = t.finish(id_bytes);
    p.events = events;
    Ok(p)
}

/// A slot's identity as bytes, to merge edge windows by.
fn id_bytes(s: &Slot) -> Vec<u8> {
    [s.id[0].to_le_bytes(), s.id[1].to_le_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensorflow_operators::{DeviceId, MetricId};

    /// Two devices over three 1-s windows; `b`'s second window goes over 80.
    const FILE: &str = concat!(
        r#"{"device":"a","metric":"t","ts":1000,"value":20.5,"seq":0}"#,
        "\n",
        r#"{"device":"b","metric":"t","ts":1100,"value":-3,"seq":0}"#,
        "\n",
        r#"{"device":"a","metric":"t","ts":1900,"value":79.99,"seq":1}"#,
        "\n",
        r#"{"device":"b","metric":"t","ts":2000,"value":80.01,"seq":1}"#,
        "\n",
        r#"{"device":"a","metric":"t","ts":2500,"value":21,"seq":2}"#,
        "\n",
        r#"{"device":"b","metric":"t","ts":2999,"value":12.25,"seq":2}"#,
        "\n",
        r#"{"device":"a","metric":"u","ts":3000,"value":99,"seq":3}"#,
        "\n",
        r#"{"device":"b","metric":"t","ts":3001,"value":1,"seq":3}"#,
        "\n",
    );

    #[test]
    fn w2_counts_the_same_windows_whatever_the_thread_count() {
        // Windows: a/t 1 s, a/t 2 s, a/u 3 s, b/t 1 s, b/t 2 s (over 80), b/t 3 s.
        for threads in 1..=5 {
            let r = w2(FILE.as_bytes(), threads).unwrap();
            assert_eq!((r.events, r.windows, r.over), (8, 6, 2), "{threads} threads");
        }
    }

    #[test]
    fn w2_refuses_a_line_of_another_shape_and_names_it() {
        let bad = format!("{FILE}{{\"metric\":\"t\",\"device\":\"a\",\"ts\":1,\"value\":1,\"seq\":0}}\n");
        let e = w2(bad.as_bytes(), 1).unwrap_err().to_string();
        assert!(e.contains(r#"{\"metric\":\"t\""#), "{e}");
        assert!(w2(b"{\"device\":\"a\",\"metric\":\"t\",\"ts\":1,\"value\":1e3,\"seq\":0}\n", 1).is_err());
    }

    #[test]
    fn decimals_parse_exactly_as_written() {
        let cases: [(&[u8], f64); 5] =
            [(b"19.15", 19.15), (b"-0.5", -0.5), (b"80", 80.0), (b"100.00", 100.0), (b"0.1", 0.1)];
        for (text, want) in cases {
            assert_eq!(decimal(text, 0).map(|(v, _)| v), Some(want), "{}", String::from_utf8_lossy(text));
        }
        assert_eq!(decimal(b"1.", 0), None);
        assert_eq!(decimal(b"99999999999999999999", 0), None, "overflow is refused, not wrapped");
    }

    #[test]
    fn integers_parse_eight_digits_at_a_time_and_refuse_overflow() {
        for text in ["0", "7", "12345678", "123456789", "1700000000123", "9999999999999999999"] {
            let want: u64 = text.parse().unwrap();
            let line = format!("{text},");
            assert_eq!(uint(line.as_bytes(), 0), Some((want, text.len())), "{text}");
        }
        assert_eq!(uint(b"18446744073709551616", 0), None, "20 digits");
        assert_eq!(uint(b"1234567:", 0), Some((1234567, 7)), "':' right after '9' ends the number");
        assert_eq!(uint(b"12345678/", 0), Some((12345678, 8)));
        assert_eq!(uint(b"x", 0), None);
        for (text, len) in [(&b"ab\"cdefghijklm"[..], 2), (b"abcdefghij\"", 10), (b"\"", 0)] {
            assert_eq!(string(text, 0).map(|(s, end)| (s.len(), end)), Some((len, len)));
        }
        assert_eq!(string(b"no quote at all", 0), None);
    }

    #[test]
    fn w1_agrees_with_w2_on_the_same_events() {
        let ev = |d: u64, m: u64, ts: u64, value: f64| Event {
            device: DeviceId(d),
            metric: MetricId(m),
            ts,
            value,
            seq: 0,
        };
        let events = [
            ev(1, 7, 1000, 20.5),
            ev(2, 7, 1100, -3.0),
            ev(1, 7, 1900, 79.99),
            ev(2, 7, 2000, 80.01),
            ev(1, 7, 2500, 21.0),
            ev(2, 7, 2999, 12.25),
            ev(1, 8, 3000, 99.0),
            ev(2, 7, 3001, 1.0),
        ];
        for threads in 1..=4 {
            let r = w1(&events, threads);
            assert_eq!((r.events, r.windows, r.over), (8, 6, 2), "{threads} threads");
        }
    }

    #[test]
    fn the_table_grows_past_its_first_size_and_keeps_every_series() {
        let events: Vec<Event> = (0..10_000u64)
            .map(|d| Event { device: DeviceId(d), metric: MetricId(1), ts: 0, value: 1.0, seq: 0 })
            .collect();
        assert_eq!(w1(&events, 1).windows, 10_000);
    }
}
