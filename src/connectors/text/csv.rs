//! CSV lines into events, by the columns the header names. Two layouts, told apart by the
//! header:
//!
//! - **narrow**: `device`, `metric`, a timestamp and `value` columns (`seq` optional, any
//!   order, other columns ignored): one event per line. A header naming `metric` is narrow;
//!   one without it is wide;
//! - **wide**, as industrial exports and NAB's files look: a timestamp column and one column
//!   per metric, an event per non-empty cell; the device from a `device` column, else the file
//!   name (`pump-7.csv` → `pump-7`). An empty cell is a missing reading (no event); a cell that
//!   is not a finite number is a dead letter naming its column, and the line's other cells
//!   still become events.
//!
//! The delimiter (`,` `;` tab `|`) is the one that splits the header into the most fields;
//! with `;`, decimal commas (`12,5`) are read as points.

use std::borrow::Cow;
use std::path::Path;

use sensorflow_operators::{Event, NO_SEQ};

use super::lines::RowParser;
use crate::connectors::parse::{parse_ts_text, EventBuilder, Limits, Reject};
use crate::timefmt::MAX_TS_MS;

/// The delimiters a header is tried with; on a tie the earlier one wins.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Names a timestamp column may have (compared case-insensitively).
pub const TS_NAMES: [&str; 5] = ["ts", "timestamp", "time", "datetime", "date"];

/// The delimiter among [`DELIMITERS`] that splits `header` into the most fields (`,` when
/// none occurs).
pub fn detect_delimiter(header: &[u8]) -> u8 {
    let mut best = (DELIMITERS[0], 0);
    for d in DELIMITERS {
        let n = memchr::memchr_iter(d, header).count();
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// A field without surrounding whitespace and one pair of surrounding double quotes.
/// (Quoted fields containing the delimiter are not supported; documented in datasets/README.md.)
#[inline]
fn unquote(f: &[u8]) -> &[u8] {
    match f.trim_ascii() {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    }
}

/// Splits a CSV line on `delim`, each field trimmed and unquoted.
pub fn csv_fields(line: &[u8], delim: u8) -> impl Iterator<Item = &[u8]> {
    line.split(move |&c| c == delim).map(unquote)
}

/// Parses a number; with `decimal_comma`, one comma and no point (`12,5`) reads as `12.5`.
fn parse_number(cell: &[u8], decimal_comma: bool) -> Option<f64> {
    let mut buf = [0u8; 64];
    let text = match memchr::memchr(b',', cell) {
        Some(at) if decimal_comma && cell.len() <= buf.len() => {
            if memchr::memchr(b'.', cell).is_some() || memchr::memrchr(b',', cell) != Some(at) {
                return None;
            }
            buf[..cell.len()].copy_from_slice(cell);
            buf[at] = b'.';
            &buf[..cell.len()]
        }
        _ => cell,
    };
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A wide file's timestamp: what [`parse_ts_text`] reads, or a bare `YYYY-MM-DD` (midnight UTC).
fn parse_wide_ts(text: &str) -> Result<u64, Reject> {
    let t = text.trim().as_bytes();
    if t.len() == 10 && t[4] == b'-' && t[7] == b'-' {
        let mut full = [b'0'; 19];
        full[..10].copy_from_slice(t);
        full[10..].copy_from_slice(b" 00:00:00");
        if let Some(ts) = std::str::from_utf8(&full).ok().and_then(|s| parse_ts_text(s).ok()) {
            return Ok(ts);
        }
    }
    parse_ts_text(text)
}

/// Where a narrow file's fields are.
#[derive(Clone, Debug)]
struct Narrow {
    device: usize,
    metric: usize,
    ts: usize,
    value: usize,
    seq: Option<usize>,
}

/// Where a wide file's fields are.
#[derive(Clone, Debug)]
struct Wide {
    ts: usize,
    ts_name: String,
    device: DeviceFrom,
    seq: Option<usize>,
    /// Metric columns in header order: (field index, metric name).
    metrics: Vec<(usize, Box<[u8]>)>,
    /// Columns whose header is empty: a value under one has no metric to belong to.
    unnamed: Vec<usize>,
}

/// Where a wide file's rows get their device.
#[derive(Clone, Debug)]
enum DeviceFrom {
    /// The `device` column.
    Column(usize),
    /// Every row: the file's name.
    File(Box<[u8]>),
}

#[derive(Clone, Debug)]
enum Layout {
    Narrow(Narrow),
    Wide(Wide),
}

/// A CSV file's delimiter and layout, from its header line.
#[derive(Clone, Debug)]
pub struct CsvFormat {
    delim: u8,
    width: usize,
    layout: Layout,
}

/// The header's names for an error message, cut to the first 20.
fn list(names: &[String]) -> String {
    let shown: Vec<&String> = names.iter().take(20).collect();
    if names.len() > shown.len() {
        format!("{shown:?} … ({} columns)", names.len())
    } else {
        format!("{shown:?}")
    }
}

impl CsvFormat {
    /// Reads the header of the CSV file `file` (its name names the device of a wide file
    /// without a `device` column). `Err` says why the header cannot work, naming its columns.
    pub fn from_header(header: &[u8], file: &Path) -> Result<Self, String> {
        let header = header.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(header);
        let delim = detect_delimiter(header);
        let raw: Vec<&[u8]> = csv_fields(header, delim).collect();
        let names: Vec<String> = raw.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let find = |n: &str| lower.iter().position(|h| h == n);
        let width = names.len();
        let ts_cols: Vec<usize> = (0..width).filter(|&i| TS_NAMES.contains(&lower[i].as_str())).collect();
        let several_ts = || {
            let found: Vec<&String> = ts_cols.iter().map(|&i| &names[i]).collect();
            format!("CSV header has several timestamp columns {found:?}; exactly one is needed (separate date and time columns are not supported)")
        };
        // A `metric` column means narrow (a wide file names its metrics in the header), so a
        // narrow header with a typo is an error naming what it lacks, not a wide file.
        if let Some(metric) = find("metric") {
            let need = |n: &str| {
                find(n).ok_or_else(|| format!("CSV header lacks a {n:?} column (header: {})", list(&lower)))
            };
            let ts = match (find("ts"), ts_cols.as_slice()) {
                (Some(ts), _) => ts,
                (None, [ts]) => *ts,
                (None, []) => need("ts")?,
                (None, _) => return Err(several_ts()),
            };
            let (device, value) = (need("device")?, need("value")?);
            let layout = Layout::Narrow(Narrow { device, metric, ts, value, seq: find("seq") });
            return Ok(CsvFormat { delim, width, layout });
        }
        let ts = match ts_cols.as_slice() {
            [ts] => *ts,
            [] => {
                return Err(format!(
                    "CSV header has no timestamp column (one named ts, timestamp, time, datetime or date; \
                     or narrow: device, metric, ts, value); columns found: {}",
                    list(&names)
                ))
            }
            _ => return Err(several_ts()),
        };
        let once = |n: &str| match lower.iter().filter(|h| *h == n).count() {
            0 | 1 => Ok(find(n)),
            _ => Err(format!("CSV header has several {n:?} columns")),
        };
        let (device_col, seq) = (once("device")?, once("seq")?);
        let device = match device_col {
            Some(i) => DeviceFrom::Column(i),
            None => {
                let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if stem.is_empty() || stem.len() > Limits::default().max_name_len {
                    return Err(format!(
                        "no \"device\" column, and the file name {:?} cannot name the device",
                        file.display().to_string()
                    ));
                }
                DeviceFrom::File(stem.into_bytes().into_boxed_slice())
            }
        };
        let (mut metrics, mut unnamed) = (Vec::new(), Vec::new());
        // A header may have hundreds of thousands of columns: no quadratic checks.
        let mut seen = std::collections::HashSet::new();
        for (i, name) in raw.iter().enumerate() {
            if i == ts || Some(i) == device_col || Some(i) == seq {
                continue;
            }
            if name.is_empty() {
                unnamed.push(i);
                continue;
            }
            if std::str::from_utf8(name).is_err() || name.len() > Limits::default().max_name_len {
                return Err(format!(
                    "CSV column {} {:?}: a metric name must be valid UTF-8 of at most {} bytes",
                    i + 1,
                    names[i],
                    Limits::default().max_name_len
                ));
            }
            if !seen.insert(*name) {
                return Err(format!("CSV header names the metric {:?} twice", names[i]));
            }
            metrics.push((i, Box::from(*name)));
        }
        if metrics.is_empty() {
            return Err(format!(
                "CSV header has no metric columns besides the timestamp; columns found: {}",
                list(&names)
            ));
        }
        let layout = Layout::Wide(Wide { ts, ts_name: names[ts].clone(), device, seq, metrics, unnamed });
        Ok(CsvFormat { delim, width, layout })
    }

    /// The delimiter detected from the header.
    pub fn delimiter(&self) -> u8 {
        self.delim
    }

    /// Whether the file is wide (a column per metric) rather than narrow (an event per line).
    pub fn is_wide(&self) -> bool {
        matches!(self.layout, Layout::Wide(_))
    }
}

/// Parses the lines of one CSV file: a [`RowParser`] for [`super::lines::LineReader`].
#[derive(Debug)]
pub struct CsvRows {
    format: CsvFormat,
    builder: EventBuilder,
    /// The current line's fields as byte ranges (reused; at most the header's width).
    spans: Vec<(usize, usize)>,
}

impl CsvRows {
    /// A parser for lines of `format`, building events with `builder`.
    pub fn new(format: CsvFormat, builder: EventBuilder) -> Self {
        CsvRows { format, builder, spans: Vec::new() }
    }

    /// Splits `line` into `self.spans`; `Err` unless it has as many fields as the header.
    fn split(&mut self, line: &[u8]) -> Result<(), Reject> {
        let width = self.format.width;
        self.spans.clear();
        let (mut n, mut start) = (0, 0);
        for at in memchr::memchr_iter(self.format.delim, line) {
            if n < width {
                self.spans.push((start, at));
            }
            n += 1;
            start = at + 1;
        }
        if n < width {
            self.spans.push((start, line.len()));
        }
        n += 1;
        if n != width {
            return Err(Cow::Owned(format!("expected {width} fields, found {n}")));
        }
        Ok(())
    }
}

fn text(cell: &[u8]) -> Result<&str, Reject> {
    std::str::from_utf8(cell).map_err(|_| Cow::Borrowed("field is not valid UTF-8"))
}

fn parse_seq(cell: &[u8]) -> Result<u64, Reject> {
    if cell.is_empty() {
        return Ok(NO_SEQ);
    }
    text(cell)?.parse().map_err(|_| {
        Cow::Owned(format!("seq {:?} is not an unsigned integer", String::from_utf8_lossy(cell)))
    })
}

impl RowParser for CsvRows {
    fn parse_row(
        &mut self,
        line: &[u8],
        events: &mut Vec<Event>,
        rejects: &mut Vec<Reject>,
    ) -> Result<(), Reject> {
        self.split(line)?;
        let Self { format, builder, spans } = self;
        let cell = |i: usize| unquote(&line[spans[i].0..spans[i].1]);
        let decimal_comma = format.delim == b';';
        match &format.layout {
            Layout::Narrow(c) => {
                let ts = parse_ts_text(text(cell(c.ts))?)?;
                let value = parse_number(cell(c.value), decimal_comma).ok_or_else(|| {
                    Cow::Owned(format!("value {:?} is not a number", String::from_utf8_lossy(cell(c.value))))
                })?;
                let seq = match c.seq {
                    Some(i) => parse_seq(cell(i))?,
                    None => NO_SEQ,
                };
                events.push(builder.build(cell(c.device), cell(c.metric), ts, value, seq)?);
            }
            Layout::Wide(w) => {
                let ts = parse_wide_ts(text(cell(w.ts))?)
                    .map_err(|e| Cow::Owned(format!("column {:?}: {e}", w.ts_name)))?;
                if ts > MAX_TS_MS {
                    return Err(Cow::Borrowed("timestamp is beyond year 9999 (expected epoch milliseconds)"));
                }
                let device = match &w.device {
                    DeviceFrom::Column(i) => {
                        let d = cell(*i);
                        if d.is_empty() || d.len() > Limits::default().max_name_len {
                            return Err(Cow::Borrowed("device name is empty or longer than 256 bytes"));
                        }
                        text(d)?;
                        d
                    }
                    DeviceFrom::File(name) => name,
                };
                let row_seq = match w.seq {
                    Some(i) => parse_seq(cell(i))?,
                    None => NO_SEQ,
                };
                // A `seq` column numbers rows, but de-duplication is on (device, seq) per
                // event: event k of row r gets r × (metric columns) + k, so a repeated row is
                // dropped while a row's metrics are not taken for duplicates of each other.
                let m = w.metrics.len() as u64;
                if row_seq != NO_SEQ && row_seq.checked_mul(m).is_none_or(|s| s >= NO_SEQ - m) {
                    return Err(Cow::Owned(format!("seq {row_seq} is too large for {m} metric columns")));
                }
                for (k, (i, name)) in w.metrics.iter().enumerate() {
                    let v = cell(*i);
                    if v.is_empty() {
                        continue;
                    }
                    let column = || String::from_utf8_lossy(name);
                    let value = match parse_number(v, decimal_comma) {
                        Some(x) if x.is_finite() => x,
                        Some(_) => {
                            let v = String::from_utf8_lossy(v);
                            rejects.push(Cow::Owned(format!(
                                "column {:?}: {v:?} is not a finite number",
                                column()
                            )));
                            continue;
                        }
                        None => {
                            let v = String::from_utf8_lossy(v);
                            rejects.push(Cow::Owned(format!("column {:?}: {v:?} is not a number", column())));
                            continue;
                        }
                    };
                    let seq = if row_seq == NO_SEQ { NO_SEQ } else { row_seq * m + k as u64 };
                    match builder.build(device, name, ts, value, seq) {
                        Ok(e) => events.push(e),
                        Err(e) => rejects.push(Cow::Owned(format!("column {:?}: {e}", column()))),
                    }
                }
                for &i in &w.unnamed {
                    if !cell(i).is_empty() {
                        rejects.push(Cow::Owned(format!(
                            "column {} has a value but no name in the header",
                            i + 1
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensorflow_operators::{DeviceId, MetricId};

    /// Parses `lines` of a file `name` with `header`: events and the line / field rejects.
    fn parse(name: &str, header: &str, lines: &[&str]) -> (Vec<Event>, Vec<String>) {
        let format = CsvFormat::from_header(header.as_bytes(), Path::new(name)).unwrap();
        let mut rows = CsvRows::new(format, EventBuilder::default());
        let (mut events, mut dead) = (Vec::new(), Vec::new());
        for line in lines {
            let mut rejects = Vec::new();
            match rows.parse_row(line.as_bytes(), &mut events, &mut rejects) {
                Ok(()) => dead.extend(rejects.into_iter().map(String::from)),
                Err(e) => dead.push(e.into_owned()),
            }
        }
        (events, dead)
    }

    #[test]
    fn csv_by_header_in_any_order() {
        let (events, dead) = parse(
            "x.csv",
            "ts,value,device,metric",
            &["2023-11-14T22:13:20Z,1.5,\"dev-1\",humidity", "1,NaN,d,m", "1,2,d", "x,2,d,m"],
        );
        let e = events[0];
        assert_eq!((e.ts, e.value, e.seq, e.device), (1_700_000_000_000, 1.5, NO_SEQ, DeviceId::of("dev-1")));
        assert_eq!(events.len(), 1);
        assert!(dead[0].contains("finite"), "{dead:?}");
        assert!(dead[1].contains("expected 4 fields"), "{dead:?}");
        assert!(dead[2].contains("neither"), "{dead:?}");
        let narrow = CsvFormat::from_header(b"ts,value,device,metric", Path::new("x.csv")).unwrap();
        assert!(!narrow.is_wide());
    }

    #[test]
    fn delimiter_is_the_one_splitting_the_header_most() {
        for (header, want) in [
            ("ts,a,b", b','),
            ("ts;a;b", b';'),
            ("ts\ta\tb", b'\t'),
            ("ts|a|b", b'|'),
            // Commas inside `;`-separated names: `;` still splits into more fields.
            ("time;temp, avg;p, max;flow", b';'),
            ("timestamp,value", b','),
            ("ts", b','),
        ] {
            assert_eq!(detect_delimiter(header.as_bytes()), want, "{header}");
        }
        let f = CsvFormat::from_header(b"Zeit|Time|Druck", Path::new("a.csv")).unwrap();
        assert_eq!((f.delimiter(), f.is_wide()), (b'|', true));
        let (events, dead) = parse("p.csv", "ts\ta\tb", &["1000\t1.5\t2"]);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(events.iter().map(|e| e.value).collect::<Vec<_>>(), [1.5, 2.0]);
    }

    #[test]
    fn decimal_commas_with_semicolons_only() {
        let (events, dead) = parse("p.csv", "timestamp;temp;pressure", &["2024-01-01 00:00:00;12,5;-0,25"]);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(events.iter().map(|e| e.value).collect::<Vec<_>>(), [12.5, -0.25]);
        // Grouped thousands are not decimal commas.
        let (events, dead) = parse("p.csv", "ts;a;b;c", &["1;1.234,5;1,2,3;7"]);
        assert_eq!((events.len(), dead.len()), (1, 2), "{dead:?}");
        // With `,` as delimiter a comma splits fields: "12,5" is two of them.
        let (events, dead) = parse("p.csv", "ts,temp", &["1,12,5"]);
        assert_eq!(
            (events.len(), dead.as_slice()),
            (0, ["expected 2 fields, found 3".to_string()].as_slice())
        );
        // Narrow `;` files read decimal commas too.
        let (events, _) = parse("n.csv", "device;metric;ts;value", &["d;m;5;3,75"]);
        assert_eq!(events[0].value, 3.75);
    }

    #[test]
    fn empty_cells_are_missing_not_events_or_dead_letters() {
        let (events, dead) =
            parse("rig.csv", "ts;a;b;c", &["1000;1;;3", "2000;;;", "3000; ;\"\";4", "4000;5;6;7"]);
        assert!(dead.is_empty(), "{dead:?}");
        let got: Vec<(u64, MetricId, f64)> = events.iter().map(|e| (e.ts, e.metric, e.value)).collect();
        let m = MetricId::of;
        assert_eq!(
            got,
            [
                (1000, m("a"), 1.0),
                (1000, m("c"), 3.0),
                (3000, m("c"), 4.0),
                (4000, m("a"), 5.0),
                (4000, m("b"), 6.0),
                (4000, m("c"), 7.0)
            ]
        );
    }

    #[test]
    fn bad_cells_are_dead_letters_naming_the_column_and_the_rest_of_the_line_counts() {
        let (events, dead) = parse(
            "pump-7.csv",
            "ts,temp,pressure,flow,",
            &["1000,20.5,abc,inf,", "2000,1,2,3,9", "soon,1,2,3,", "3000,1,2", "4000,1e300,2,3,"],
        );
        assert_eq!(
            dead,
            [
                r#"column "pressure": "abc" is not a number"#,
                r#"column "flow": "inf" is not a finite number"#,
                "column 5 has a value but no name in the header",
                r#"column "ts": ts "soon" is neither epoch ms nor RFC 3339"#,
                "expected 5 fields, found 3",
                r#"column "temp": value 1e300 is beyond the limit ±1e12"#,
            ],
        );
        let got: Vec<(u64, f64)> = events.iter().map(|e| (e.ts, e.value)).collect();
        assert_eq!(got, [(1000, 20.5), (2000, 1.0), (2000, 2.0), (2000, 3.0), (4000, 2.0), (4000, 3.0)]);
    }

    #[test]
    fn device_from_the_file_name_or_a_device_column() {
        let (events, _) = parse("/data/plant/pump-7.csv", "Timestamp,value", &["2024-01-01 00:00:01,4"]);
        assert_eq!((events[0].device, events[0].metric), (DeviceId::of("pump-7"), MetricId::of("value")));
        assert_eq!(events[0].ts, 1_704_067_201_000);
        let (events, dead) = parse("all.csv", "device,date,temp", &["m-1,2024-01-02,3", ",2024-01-02,3"]);
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].device, events[0].ts), (DeviceId::of("m-1"), 1_704_153_600_000));
        assert!(dead[0].contains("device name is empty"), "{dead:?}");
    }

    #[test]
    fn wide_seq_numbers_rows_and_each_metric_gets_its_own() {
        let (events, dead) = parse("d.csv", "seq,ts,a,b", &["7,1000,1,2", ",2000,3,4", "x,3000,1,1"]);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [14, 15, NO_SEQ, NO_SEQ]);
        assert!(dead[0].contains("not an unsigned integer"), "{dead:?}");
        let (_, dead) = parse("d.csv", "seq,ts,a,b", &[&format!("{},1,1,1", u64::MAX / 2)]);
        assert!(dead[0].contains("too large"), "{dead:?}");
    }

    #[test]
    fn headers_that_cannot_work_are_clear_errors() {
        let err = |h: &str| CsvFormat::from_header(h.as_bytes(), Path::new("f.csv")).unwrap_err();
        let e = err("when;temp;pressure");
        assert!(e.contains("no timestamp column") && e.contains(r#"["when", "temp", "pressure"]"#), "{e}");
        assert!(err("date,time,temp").contains("several timestamp columns"));
        assert!(err("ts,temp,temp").contains("\"temp\" twice"));
        assert!(err("timestamp").contains("no metric columns"));
        assert!(err("device,metric,value").contains("lacks a \"ts\""));
        assert!(err("device,metric,ts,val").contains("lacks a \"value\""));
        let many: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
        assert!(err(&many.join(",")).contains("(500 columns)"));
        // Far more than the 16 columns narrow files were once limited to, and a byte-order mark.
        let wide = format!("\u{feff}ts,{}", many.join(","));
        let format = CsvFormat::from_header(wide.as_bytes(), Path::new("f.csv")).unwrap();
        let mut rows = CsvRows::new(format, EventBuilder::default());
        let line = format!("5,{}", (0..500).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        let mut events = Vec::new();
        rows.parse_row(line.as_bytes(), &mut events, &mut Vec::new()).unwrap();
        assert_eq!(events.len(), 500);
        assert_eq!(events[499].value, 499.0);
    }

    #[test]
    fn wide_rows_read_the_same_over_any_byte_ranges() {
        use sensorflow_operators::{PartitionReader, Poll, SourceBatch};

        use super::super::lines::{split_ranges, LineReader};
        use super::super::MAX_LINE;

        // 300 rows of 4 metrics with a blank cell every 7th one; expected: the non-blank cells.
        let mut text = String::from("time;a;b;c;d\n");
        let mut want = Vec::new();
        for i in 0..300u64 {
            text.push_str(&(1000 * i).to_string());
            for m in 0..4u64 {
                text.push(';');
                if (i * 4 + m) % 7 != 3 {
                    text.push_str(&format!("{i},{m}"));
                    want.push((1000 * i, ["a", "b", "c", "d"][m as usize], format!("{i}.{m}")));
                }
            }
            text.push('\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rig-2.csv");
        std::fs::write(&path, &text).unwrap();
        let mut want: Vec<(u64, MetricId, f64)> =
            want.into_iter().map(|(ts, m, v)| (ts, MetricId::of(m), v.parse().unwrap())).collect();
        want.sort_by(|x, y| x.partial_cmp(y).unwrap());
        for parts in [1, 2, 3, 7] {
            let mut got = Vec::new();
            for (start, end) in split_ranges(text.len() as u64, parts) {
                let format = CsvFormat::from_header(b"time;a;b;c;d", &path).unwrap();
                let rows = CsvRows::new(format, EventBuilder::default());
                let mut reader = LineReader::new(&path, start, end, true, MAX_LINE, rows);
                let mut batch = SourceBatch::default();
                while reader.poll(&mut batch).unwrap() != Poll::Done {}
                assert!(batch.dead.is_empty(), "{:?}", batch.dead);
                assert!(batch.events.iter().all(|e| e.device == DeviceId::of("rig-2")));
                got.extend(batch.events.iter().map(|e| (e.ts, e.metric, e.value)));
            }
            got.sort_by(|x, y| x.partial_cmp(y).unwrap());
            assert_eq!(got, want, "{parts} ranges");
        }
    }
}
