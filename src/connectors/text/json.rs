//! One JSON line into an [`Event`], with a fast path for the canonical shape
//! (`{"device":…,"metric":…,"ts":…,"value":…,"seq":…}`) and serde for everything else.

use std::borrow::Cow;

use sensorflow_operators::{Event, NO_SEQ};
use serde::Deserialize;

use crate::connectors::parse::{EventBuilder, Reject};
use crate::timefmt::parse_datetime;

/// Parses one JSON line.
///
/// The fast path reads exactly `{"device":"…","metric":"…","ts":N,"value":X[,"seq":N]}` with
/// no whitespace or escapes, the shape our own tools write; anything else goes through
/// serde_json, which accepts any field order, whitespace, escapes, extra fields and
/// RFC 3339 timestamps.
#[inline]
pub fn parse_json(line: &[u8], b: &mut EventBuilder) -> Result<Event, Reject> {
    if let Some(f) = fast_json(line) {
        return b.build(f.device, f.metric, f.ts, f.value, f.seq);
    }
    slow_json(line, b)
}

struct Fields<'a> {
    device: &'a [u8],
    metric: &'a [u8],
    ts: u64,
    value: f64,
    seq: u64,
}

#[inline]
fn strip<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    s.strip_prefix(prefix)
}

/// Bytes of `x` that are zero, as their high bits (exact up to the first zero byte, which is
/// all the callers read).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

/// The string up to the next `"`, and the rest from that quote; `None` at a backslash (an
/// escape, for the general parser) or with no quote. Eight bytes at a time.
#[inline]
fn string_until_quote(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut at = 0;
    while let Some(word) = s.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let hit = zero_bytes(w ^ 0x2222_2222_2222_2222) | zero_bytes(w ^ 0x5C5C_5C5C_5C5C_5C5C);
        if hit != 0 {
            let end = at + (hit.trailing_zeros() / 8) as usize;
            return (s[end] == b'"').then(|| (&s[..end], &s[end..]));
        }
        at += 8;
    }
    let end = at + s[at..].iter().position(|&c| c == b'"' || c == b'\\')?;
    (s[end] == b'"').then(|| (&s[..end], &s[end..]))
}

/// The value of 8 ASCII digits loaded little-endian (first digit most significant), in three
/// multiplies instead of eight dependent multiply-adds (Lemire's SWAR method).
#[inline]
fn parse_eight(chunk: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let mut v = chunk.wrapping_sub(0x3030_3030_3030_3030);
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & MASK).wrapping_mul(MUL1).wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))) >> 32
}

/// How many of the 8 bytes of `chunk` (loaded little-endian) are ASCII digits before the
/// first that is not (8: all).
#[inline]
fn digit_prefix_len(chunk: u64) -> usize {
    let t = chunk ^ 0x3030_3030_3030_3030;
    // A byte is a digit iff it maps to 0..=9: adding 0x76 leaves its high bit clear. Carries
    // out of a non-digit byte only reach bytes after it, which are not read.
    let non_digit = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
    (non_digit.trailing_zeros() / 8) as usize
}

/// Powers of ten below 10^8, for the digits of a partial chunk.
const POW10_U64: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// An unsigned integer of 1-19 digits at the start of `s`, and the rest. Eight bytes at a
/// time where the line has them: the digits of a chunk that ends the number are shifted to
/// its top, padded with `'0'`s, and read by the same three multiplies.
#[inline(always)]
fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let chunk = u64::from_le_bytes(word.try_into().ok()?);
        let n = digit_prefix_len(chunk);
        // More than 19 digits do not fit (and 10^19 · v would overflow).
        if i + n > 19 {
            return None;
        }
        if n == 8 {
            v = v * 100_000_000 + parse_eight(chunk);
            i += 8;
            continue;
        }
        if n > 0 {
            let shift = (8 - n) * 8;
            let padded = (chunk << shift) | (0x3030_3030_3030_3030 >> (64 - shift));
            v = v * POW10_U64[n] + parse_eight(padded);
            i += n;
        }
        return (i > 0).then(|| (v, &s[i..]));
    }
    while i < s.len() && s[i].is_ascii_digit() {
        if i >= 19 {
            return None;
        }
        v = v * 10 + u64::from(s[i] - b'0');
        i += 1;
    }
    if i == 0 {
        return None;
    }
    Some((v, &s[i..]))
}

#[inline]
fn fast_json(line: &[u8]) -> Option<Fields<'_>> {
    let s = strip(line, b"{\"device\":\"")?;
    let (device, s) = string_until_quote(s)?;
    let s = strip(s, b"\",\"metric\":\"")?;
    let (metric, s) = string_until_quote(s)?;
    let s = strip(s, b"\",\"ts\":")?;
    let (ts, s) = digits(s)?;
    let s = strip(s, b",\"value\":")?;
    let (value, n) = match decimal_prefix(s) {
        Some(v) => v,
        None => {
            let n = number_len(s);
            (std::str::from_utf8(&s[..n]).ok()?.parse().ok()?, n)
        }
    };
    let s = &s[n..];
    let (seq, s) = match strip(s, b",\"seq\":") {
        Some(s) => digits(s)?,
        None => (NO_SEQ, s),
    };
    let s = strip(s, b"}")?;
    if !s.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(Fields { device, metric, ts, value, seq })
}

/// Length of the JSON number at the start of `s` (characters `0-9 - + . e E`).
#[inline]
fn number_len(s: &[u8]) -> usize {
    s.iter().position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).unwrap_or(s.len())
}

/// The decimal `-?digits[.digits]` at the start of `s` (at most 15 significant digits, no
/// exponent) and its length, in one pass; `None` when the number goes on in another form
/// (an exponent, a 16th digit) or is not one, for the general parser. The mantissa (< 2^53)
/// and the power of ten are exact f64s, so one division rounds correctly (Clinger's fast path;
/// the tests check it against the general parser).
#[inline]
fn decimal_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let neg = s.first() == Some(&b'-');
    let start = usize::from(neg);
    let mut mantissa: u64 = 0;
    let mut count = 0usize;
    let mut i = digit_run(s, start, &mut mantissa, &mut count)?;
    if i == start {
        return None;
    }
    let mut scale = 0;
    if s.get(i) == Some(&b'.') {
        let frac = i + 1;
        i = digit_run(s, frac, &mut mantissa, &mut count)?;
        scale = i - frac;
        if scale == 0 {
            return None;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E' | b'+' | b'-' | b'.')) {
        return None;
    }
    let v = mantissa as f64 / POW10[scale];
    Some((if neg { -v } else { v }, i))
}

/// Adds the digits of `s` from `i` to `mantissa` (counting them in `count`) and returns the
/// index after them; `None` past 15 significant digits.
#[inline(always)]
fn digit_run(s: &[u8], mut i: usize, mantissa: &mut u64, count: &mut usize) -> Option<usize> {
    while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        if *count == 15 {
            return None;
        }
        *mantissa = *mantissa * 10 + u64::from(c - b'0');
        *count += 1;
        i += 1;
    }
    Some(i)
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

#[cfg(test)]
/// Parses `-?digits[.digits]` with at most 15 significant digits and no exponent, the shape
/// sensors write, without going through the general float parser. Both the mantissa
/// (< 2^53) and the power of ten are exact f64s, so one IEEE division rounds correctly
/// (Clinger's fast path); anything else returns `None` for the general parser.
#[inline]
fn simple_decimal(s: &[u8]) -> Option<f64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0usize;
    let mut frac_digits = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                // A 16th digit goes to the general parser (and the mantissa cannot overflow).
                if count == 15 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
            }
            b'.' if frac_digits.is_none() && i > 0 => frac_digits = Some(count),
            _ => return None,
        }
    }
    if count == 0 || count > 15 || frac_digits == Some(count) {
        return None;
    }
    let scale = count - frac_digits.unwrap_or(count);
    let v = mantissa as f64 / POW10[scale];
    Some(if neg { -v } else { v })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Ts {
    Millis(u64),
    Text(String),
}

#[derive(Deserialize)]
struct JsonEvent {
    device: String,
    metric: String,
    ts: Ts,
    value: f64,
    #[serde(default)]
    seq: Option<u64>,
}

#[cold]
pub(crate) fn slow_json(line: &[u8], b: &mut EventBuilder) -> Result<Event, Reject> {
    let e: JsonEvent =
        serde_json::from_slice(line).map_err(|e| Cow::Owned(format!("invalid event JSON: {e}")))?;
    let ts = match e.ts {
        Ts::Millis(ms) => ms,
        Ts::Text(s) => parse_datetime(&s)
            .ok_or_else(|| Cow::Owned(format!("ts {s:?} is neither epoch ms nor RFC 3339")))?,
    };
    b.build(e.device.as_bytes(), e.metric.as_bytes(), ts, e.value, e.seq.unwrap_or(NO_SEQ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensorflow_operators::DeviceId;

    #[test]
    fn fast_and_slow_paths_agree() {
        let mut b = EventBuilder::default();
        let fast =
            br#"{"device":"dev-000123","metric":"temperature","ts":1700000000123,"value":23.41,"seq":42}"#;
        let slow = br#" { "seq": 42, "value": 23.41, "ts": "2023-11-14T22:13:20.123Z", "metric": "temperature", "device": "dev-000123", "extra": [1] }"#;
        assert!(fast_json(fast).is_some());
        assert!(fast_json(slow).is_none());
        let a = parse_json(fast, &mut b).unwrap();
        let c = parse_json(slow, &mut b).unwrap();
        assert_eq!(a, c);
        assert_eq!(a.device, DeviceId::of("dev-000123"));
        assert_eq!((a.ts, a.value, a.seq), (1_700_000_000_123, 23.41, 42));
    }

    #[test]
    fn simple_decimals_match_the_general_parser() {
        for text in ["0", "23.41", "-7.5", "1234567.89012", "0.000001", "999999999999999", "80.00", "-0.0"] {
            let want: f64 = text.parse().unwrap();
            assert_eq!(simple_decimal(text.as_bytes()).map(f64::to_bits), Some(want.to_bits()), "{text}");
        }
        for text in ["", "-", ".5", "5.", "1e3", "1.2.3", "1234567890123456", "+1", "--1"] {
            assert_eq!(simple_decimal(text.as_bytes()), None, "{text}");
        }
        // A pseudo-random sweep of 2-decimal values, the common sensor shape.
        let mut x = 12345u64;
        for _ in 0..100_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let text = format!("{}.{:02}", (x >> 40) % 100_000, (x >> 20) % 100);
            let want: f64 = text.parse().unwrap();
            assert_eq!(simple_decimal(text.as_bytes()), Some(want), "{text}");
        }
    }

    #[test]
    fn decimal_prefix_matches_simple_decimal_and_stops_at_the_number_end() {
        for text in ["0", "23.41", "-7.5", "1234567.89012", "0.000001", "999999999999999", "80.00", "-0.0"] {
            for end in ["", ",\"seq\":1}", "}"] {
                let line = format!("{text}{end}");
                let got = decimal_prefix(line.as_bytes()).map(|(v, n)| (v.to_bits(), n));
                let want = simple_decimal(text.as_bytes()).map(|v| (v.to_bits(), text.len()));
                assert_eq!(got, want, "{line}");
            }
        }
        for text in ["", "-", ".5", "5.", "1e3", "1.2.3", "1234567890123456", "+1", "--1", "2.5E1", "7-"] {
            assert_eq!(decimal_prefix(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn quoted_strings_are_found_a_word_at_a_time_and_escapes_refused() {
        for len in 0..40 {
            let name = "d".repeat(len);
            let text = format!("{name}\",\"rest");
            let (got, rest) = string_until_quote(text.as_bytes()).unwrap();
            assert_eq!((got, &rest[..3]), (name.as_bytes(), &b"\",\""[..]), "length {len}");
            let escaped = format!("{name}\\\"x\"");
            assert!(string_until_quote(escaped.as_bytes()).is_none(), "escape after {len} bytes");
        }
        assert!(string_until_quote(b"no quote at all, long enough").is_none());
    }

    #[test]
    fn swar_digits_match_scalar() {
        for text in [
            "0",
            "7",
            "12345678",
            "123456789",
            "1700000000123",
            "9999999999999999999",
            "00000000000000000001",
        ] {
            let want: Option<u64> = if text.len() <= 19 { text.parse().ok() } else { None };
            assert_eq!(digits(text.as_bytes()).map(|(v, _)| v), want, "{text}");
        }
        assert_eq!(digits(b"12345678,\"x"), Some((12_345_678, &b",\"x"[..])));
        assert_eq!(digits(b"1234567a9"), Some((1_234_567, &b"a9"[..])));
        assert_eq!(digits(b"x1"), None);
        assert_eq!(digits(b"99999999999999999999"), None, "20 digits overflow");
        assert_eq!(digits(b"99999999999999999999,"), None, "20 digits overflow before a comma");
        assert_eq!(digits(b"9999999999999999999,\"x"), Some((9_999_999_999_999_999_999, &b",\"x"[..])));
        // Every length of number, ended by each kind of byte, against the standard parser.
        for len in 1..=19 {
            let text: String = (0..len).map(|k| char::from(b'1' + (k * 7 % 9) as u8)).collect();
            let want: u64 = text.parse().unwrap();
            for end in ["", ",\"seq\":5}", "}", "x", "/", ":"] {
                let line = format!("{text}{end}");
                assert_eq!(digits(line.as_bytes()), Some((want, end.as_bytes())), "{line}");
            }
        }
        for pos in 0..8 {
            assert_eq!(digit_prefix_len(u64::from_le_bytes(*b"12345678") & !(0xFF << (8 * pos))), pos);
        }
    }

    #[test]
    fn seq_is_optional_and_escapes_take_the_slow_path() {
        let mut b = EventBuilder::default();
        let e = parse_json(br#"{"device":"a","metric":"m","ts":5,"value":-1e3}"#, &mut b).unwrap();
        assert_eq!((e.seq, e.value), (NO_SEQ, -1000.0));
        let e = parse_json(br#"{"device":"a\"b","metric":"m","ts":5,"value":1}"#, &mut b).unwrap();
        assert_eq!(e.device, DeviceId::of("a\"b"));
    }

    #[test]
    fn bad_json_is_rejected_with_a_reason() {
        let mut b = EventBuilder::default();
        let cases: [(&[u8], &str); 9] = [
            (b"{not json", "invalid event JSON"),
            (br#"{"device":"a","metric":"m","ts":"soon","value":1}"#, "neither epoch ms"),
            (br#"{"device":"a","metric":"m","ts":5,"value":"hot"}"#, "invalid type"),
            (br#"{"device":"a","metric":"m","value":1}"#, "missing field `ts`"),
            (br#"{"device":"a","metric":"m","ts":5,"value":NaN}"#, "invalid event JSON"),
            (br#"{"device":"a","metric":"m","ts":5,"value":1e999}"#, "not a finite number"),
            (br#"{"device":"a","metric":"m","ts":5,"value":1e300}"#, "beyond the limit"),
            (br#"{"device":"","metric":"m","ts":5,"value":1}"#, "empty"),
            (b"{\"device\":\"\xff\xfe\",\"metric\":\"m\",\"ts\":5,\"value\":1}", "UTF-8"),
        ];
        for (line, want) in cases {
            let err = parse_json(line, &mut b).unwrap_err();
            assert!(err.contains(want), "{}: {err}", String::from_utf8_lossy(line));
        }
        let err = parse_json(br#"{"device":"a","metric":"m","ts":99999999999999999,"value":1}"#, &mut b)
            .unwrap_err();
        assert!(err.contains("year 9999"), "{err}");
    }
}
