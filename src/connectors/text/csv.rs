//! One CSV line into an [`Event`], by the columns its header names (narrow files:
//! `device,metric,ts,value[,seq]` in any order).

use std::borrow::Cow;

use sensorflow_operators::{Event, NO_SEQ};

use crate::connectors::parse::{parse_ts_text, EventBuilder, Reject};

/// Column positions of a CSV file, from its header line.
#[derive(Clone, Copy, Debug)]
pub struct CsvColumns {
    device: usize,
    metric: usize,
    ts: usize,
    value: usize,
    seq: Option<usize>,
    width: usize,
}

/// Splits a CSV line on commas, removing one pair of surrounding double quotes per field.
/// (Quoted fields containing commas are not supported; documented in datasets/README.md.)
pub fn csv_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&c| c == b',').map(|f| {
        let f = f.trim_ascii();
        match f {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        }
    })
}

impl CsvColumns {
    /// Reads the header; `device`, `metric`, `ts` and `value` are required, `seq` optional.
    pub fn from_header(header: &[u8]) -> Result<Self, String> {
        let names: Vec<String> =
            csv_fields(header).map(|f| String::from_utf8_lossy(f).to_ascii_lowercase()).collect();
        let find = |n: &str| names.iter().position(|h| h == n);
        let need =
            |n: &str| find(n).ok_or_else(|| format!("CSV header lacks a {n:?} column (header: {names:?})"));
        Ok(CsvColumns {
            device: need("device")?,
            metric: need("metric")?,
            ts: need("ts")?,
            value: need("value")?,
            seq: find("seq"),
            width: names.len(),
        })
    }

    /// Parses one data line.
    pub fn parse(&self, line: &[u8], b: &mut EventBuilder) -> Result<Event, Reject> {
        let mut cols: [&[u8]; 16] = [b""; 16];
        let mut n = 0;
        for f in csv_fields(line) {
            if n < cols.len() {
                cols[n] = f;
            }
            n += 1;
        }
        if n != self.width {
            return Err(Cow::Owned(format!("expected {} fields, found {n}", self.width)));
        }
        if self.width > cols.len() {
            return Err(Cow::Borrowed("more than 16 columns are not supported"));
        }
        let text =
            |i: usize| std::str::from_utf8(cols[i]).map_err(|_| Cow::Borrowed("field is not valid UTF-8"));
        let ts = parse_ts_text(text(self.ts)?)?;
        let value: f64 = text(self.value)?.parse().map_err(|_| {
            Cow::Owned(format!("value {:?} is not a number", String::from_utf8_lossy(cols[self.value])))
        })?;
        let seq = match self.seq {
            Some(i) if !cols[i].is_empty() => text(i)?.parse().map_err(|_| {
                Cow::Owned(format!("seq {:?} is not an unsigned integer", String::from_utf8_lossy(cols[i])))
            })?,
            _ => NO_SEQ,
        };
        b.build(cols[self.device], cols[self.metric], ts, value, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensorflow_operators::DeviceId;

    #[test]
    fn csv_by_header_in_any_order() {
        let mut b = EventBuilder::default();
        let cols = CsvColumns::from_header(b"ts,value,device,metric").unwrap();
        let e = cols.parse(b"2023-11-14T22:13:20Z,1.5,\"dev-1\",humidity", &mut b).unwrap();
        assert_eq!((e.ts, e.value, e.seq, e.device), (1_700_000_000_000, 1.5, NO_SEQ, DeviceId::of("dev-1")));
        assert!(cols.parse(b"1,NaN,d,m", &mut b).unwrap_err().contains("finite"));
        assert!(cols.parse(b"1,2,d", &mut b).unwrap_err().contains("expected 4 fields"));
        assert!(cols.parse(b"x,2,d,m", &mut b).unwrap_err().contains("neither"));
        assert!(CsvColumns::from_header(b"time,value").unwrap_err().contains("device"));
    }
}
