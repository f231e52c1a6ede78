//! One entry point per parser of outside input, for the fuzz targets in `fuzz/` (cargo-fuzz,
//! libFuzzer) and for the regression tests that replay their corpora (`tests/integration/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes, runs them through the same code the engine runs on
//! that input, and checks what must hold whatever the input: no panic (libFuzzer reports
//! one as a crash), bounded time and memory (its limits), every line or message accounted
//! for as an event or a dead letter, and every event's value finite. A violated property
//! panics with the reason, so the fuzzer keeps the input.
//!
//! | target | input |
//! |---|---|
//! | [`json_line`] | a JSON-lines file: the fast path and its fallback, one line at a time |
//! | [`json_fallback`] | one line through the general JSON parser alone |
//! | [`csv_narrow`] | rows under the narrow header `device,metric,ts,value,seq` |
//! | [`csv_any`] | a whole CSV file: any header (narrow or wide, any delimiter), then rows |
//! | [`nab`] | a NAB file's rows (`timestamp,value`) |
//! | [`binlog`] | a whole binary event log |
//! | [`binlog_chunk`] | one events chunk's payload, through the decoder alone |
//! | [`mqtt`] | a topic (first line) and a payload, with and without a topic template |
//! | [`kafka`] | one Kafka message's payload |
//! | [`rules`] | a rules file (TOML) |
//! | [`model_card`] | a model card (JSON) |
//! | [`row_card`] | a learned device model's card (JSON) |
//! | [`run_config`] | a run config file (TOML), checked as `run` checks it |
//! | [`http_query`] | an `/alerts` query string and its headers |

use std::path::Path;

use sensorflow_operators::{Dictionary, Event, PartitionReader, Poll, SourceBatch};

use crate::connectors::binlog::LogReader;
use crate::connectors::mqtt::{parse_message, TopicTemplate};
use crate::connectors::parse::{EventBuilder, Limits, Reject};
use crate::connectors::text::csv::{CsvFormat, CsvRows};
use crate::connectors::text::lines::{LineParser, RowParser};

/// What one input gave: events and rejected records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Events built.
    pub events: usize,
    /// Records rejected (dead letters, or `Err` for a file or setting refused as a whole).
    pub rejected: usize,
}

fn builder() -> EventBuilder {
    let dict = Dictionary::default();
    EventBuilder::new(dict.devices.clone(), dict.metrics.clone(), Limits::default())
}

fn check_events(events: &[Event]) {
    for e in events {
        assert!(e.value.is_finite(), "an event with a value that is not finite: {e:?}");
    }
}

/// The non-blank lines of `data`, as the line readers split them (`\n`, `\r\n`).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

fn one_per_line(data: &[u8], mut parse: impl FnMut(&[u8]) -> Result<Event, Reject>) -> Outcome {
    let mut out = Outcome::default();
    for line in lines(data) {
        match parse(line) {
            Ok(e) => {
                check_events(&[e]);
                out.events += 1;
            }
            Err(reason) => {
                assert!(!reason.is_empty(), "a rejected line without a reason");
                out.rejected += 1;
            }
        }
    }
    out
}

/// A JSON-lines file, line by line, through [`crate::connectors::text::json::parse_json`].
pub fn json_line(data: &[u8]) -> Outcome {
    let mut b = builder();
    one_per_line(data, |l| crate::connectors::text::json::parse_json(l, &mut b))
}

/// One line through the general JSON parser (the fast path's fallback) alone.
pub fn json_fallback(data: &[u8]) -> Outcome {
    let mut b = builder();
    one_per_line(data, |l| crate::connectors::text::json::slow_json(l, &mut b))
}

fn csv_rows(format: CsvFormat, rows: &[u8]) -> Outcome {
    let mut parser = CsvRows::new(format, builder());
    let mut out = Outcome::default();
    let (mut events, mut rejects) = (Vec::new(), Vec::new());
    for line in lines(rows) {
        events.clear();
        rejects.clear();
        match parser.parse_row(line, &mut events, &mut rejects) {
            Ok(()) => {
                check_events(&events);
                out.events += events.len();
                out.rejected += rejects.len();
            }
            Err(reason) => {
                assert!(!reason.is_empty(), "a rejected row without a reason");
                out.rejected += 1;
            }
        }
    }
    out
}

/// Rows under the narrow header `device,metric,ts,value,seq`.
pub fn csv_narrow(data: &[u8]) -> Outcome {
    match CsvFormat::from_header(b"device,metric,ts,value,seq", Path::new("fuzz.csv")) {
        Ok(format) => csv_rows(format, data),
        Err(e) => panic!("the narrow header is refused: {e}"),
    }
}

/// A whole CSV file: its first line is the header (narrow or wide, any delimiter).
pub fn csv_any(data: &[u8]) -> Outcome {
    let (header, rows) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let header = header.strip_suffix(b"\r").unwrap_or(header);
    match CsvFormat::from_header(header, Path::new("fuzz-device.csv")) {
        Ok(format) => csv_rows(format, rows),
        Err(e) => {
            assert!(!e.is_empty(), "a refused header without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// A NAB file's rows (`timestamp,value`, no header).
pub fn nab(data: &[u8]) -> Outcome {
    let mut parser = crate::connectors::nab::NabLines::new(b"fuzz", builder());
    one_per_line(data, |l| parser.parse_line(l))
}

/// Polls for a whole file before giving up (a reader that never finishes is a bug).
const MAX_POLLS: usize = 1 << 20;

/// A whole binary event log, read through [`LogReader`] (written to a file of this process's
/// own in the temporary directory).
pub fn binlog(data: &[u8]) -> Outcome {
    thread_local! {
        static FILE: std::path::PathBuf = std::env::temp_dir().join(format!(
            "sensorflow-fuzz-{}-{:?}.sflog",
            std::process::id(),
            std::thread::current().id()
        ));
    }
    let path = FILE.with(Clone::clone);
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write {}: {e}", path.display());
    }
    let mut reader = LogReader::new(&path, 0, 1, Dictionary::default(), None);
    let mut out = Outcome::default();
    let mut batch = SourceBatch::default();
    for _ in 0..MAX_POLLS {
        batch.events.clear();
        batch.dead.clear();
        match reader.poll(&mut batch) {
            Ok(Poll::Done) => return out,
            Ok(_) => {
                check_events(&batch.events);
                out.events += batch.events.len();
                out.rejected += batch.dead.len();
            }
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a failed log without a reason");
                out.rejected += 1;
                return out;
            }
        }
    }
    panic!("the log reader neither finished nor failed after {MAX_POLLS} polls");
}

/// One events chunk's payload through the binary log's decoder (abomonation over the bytes),
/// as the reader decodes it once the chunk's checksum has matched: [`binlog`] rarely gets past
/// the checksum, so the decoder has this target of its own.
pub fn binlog_chunk(data: &[u8]) -> Outcome {
    let mut buf = vec![0u64; data.len().div_ceil(8)];
    crate::connectors::binlog::codec::bytes(&mut buf, data.len()).copy_from_slice(data);
    let mut events = Vec::new();
    match crate::connectors::binlog::codec::decode(&mut buf, data.len(), &mut events) {
        // The reader checks each event's count and values after decoding, not the decoder.
        Some(()) => Outcome { events: events.len(), rejected: 0 },
        None => Outcome { events: 0, rejected: 1 },
    }
}

/// An MQTT message: the topic is the first line, the rest the payload. The first byte picks
/// the topic template (none, `sensors/{device}/{metric}`, `+/{device}/#`).
pub fn mqtt(data: &[u8]) -> Outcome {
    let Some((&pick, data)) = data.split_first() else { return Outcome::default() };
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic);
    let template = match pick % 3 {
        0 => None,
        1 => Some(TopicTemplate::new("sensors/{device}/{metric}")),
        _ => Some(TopicTemplate::new("+/{device}/#")),
    };
    let mut b = builder();
    let mut batch = SourceBatch::default();
    parse_message("fuzz", 0, &topic, payload, template.as_ref(), &mut b, &mut batch);
    check_events(&batch.events);
    let lines = lines(payload).count();
    let (events, dead) = (batch.events.len(), batch.dead.len());
    // Every non-blank line is an event or a dead letter; the whole payload is one dead letter
    // only when it is blank, too large, or its topic does not match the template.
    let whole = lines == 0
        || payload.len() > crate::connectors::mqtt::MAX_PAYLOAD
        || template.as_ref().is_some_and(|t| t.extract(&topic).is_none());
    if whole {
        assert!(events == 0 && dead == 1, "a refused payload gave {events} events, {dead} dead");
    } else {
        assert_eq!(events + dead, lines, "{lines} lines gave {events} events, {dead} dead");
    }
    Outcome { events, rejected: dead }
}

/// One Kafka message's payload (empty: no payload).
pub fn kafka(data: &[u8]) -> Outcome {
    let mut b = builder();
    let mut batch = SourceBatch::default();
    let payload = (!data.is_empty()).then_some(data);
    let newest = crate::connectors::kafka::parse_payload("fuzz", 0, payload, &mut b, &mut batch);
    check_events(&batch.events);
    assert_eq!(newest, batch.events.iter().map(|e| e.ts).max(), "the newest event time is wrong");
    let lines = lines(data).count();
    let (events, dead) = (batch.events.len(), batch.dead.len());
    // Every non-blank line is an event or a dead letter; an empty or oversized message is one.
    if lines == 0 || data.len() > crate::connectors::kafka::MAX_MESSAGE {
        assert!(events == 0 && dead == 1, "a refused message gave {events} events, {dead} dead");
    } else {
        assert_eq!(events + dead, lines, "{lines} lines gave {events} events, {dead} dead");
    }
    Outcome { events, rejected: dead }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A rules file (TOML).
pub fn rules(data: &[u8]) -> Outcome {
    let Some(text) = text(data) else { return Outcome { events: 0, rejected: 1 } };
    match crate::config::rules::parse_rules(text, "fuzz.toml") {
        Ok(controls) => Outcome { events: controls.len(), rejected: 0 },
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refused rules file without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// A model card (JSON), checked as loading a model checks it; a card that passes also builds
/// the per-series calibration it describes and scores a few values with it.
pub fn model_card(data: &[u8]) -> Outcome {
    let Some(text) = text(data) else { return Outcome { events: 0, rejected: 1 } };
    match sensorflow_models::detector::artifact::parse_card(text, Path::new("fuzz.json")) {
        Ok(card) => {
            if let Some(params) = card.calibration {
                let mut c = sensorflow_operators::scoring::likelihood::Calibration::new(params);
                // Past the warm-up (when it is short enough to reach), so scores leave 0.
                let rows = params.warmup.min(10_000) + 64;
                for i in 0..rows {
                    let beyond = c.observe((i % 7) as f64);
                    let s = c.score((i % 5) as f64 / 5.0, beyond);
                    assert!(s.is_finite(), "a checked card's calibration scored {s}");
                }
            }
            Outcome { events: 1, rejected: 0 }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refused card without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// A learned device model's card (JSON), checked as loading it checks it; a card that passes
/// builds a network of its shape (when small enough to build quickly) and predicts a row.
pub fn row_card(data: &[u8]) -> Outcome {
    use sensorflow_models::device::learned::{parse_row_card, RowPrior, RowStudent, Scratch};
    let Some(text) = text(data) else { return Outcome { events: 0, rejected: 1 } };
    match parse_row_card(text, Path::new("fuzz.json")) {
        Ok(card) => {
            let (n, inputs) = (card.schema.metrics.len(), card.schema.inputs());
            if inputs * card.hidden <= 100_000 {
                let device = sensorflow_models::detector::training::device();
                let student = RowStudent::new(inputs, n, card.hidden, &device);
                let prior = RowPrior::from_student(card.schema.clone(), &student);
                let prior = prior.unwrap_or_else(|e| panic!("a checked card's shape was refused: {e}"));
                let feat: Vec<f64> =
                    (0..n * card.schema.block()).map(|i| card.schema.mean[i / card.schema.block()]).collect();
                let mut out = vec![0.0; n];
                prior.predict(&feat, &mut out, &mut Scratch::default());
                assert!(out.iter().all(|v| v.is_finite()), "a checked card predicted {out:?}");
            }
            Outcome { events: 1, rejected: 0 }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refused card without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// A run config file (TOML), checked as `sensorflow run --config` checks it.
pub fn run_config(data: &[u8]) -> Outcome {
    let Some(text) = text(data) else { return Outcome { events: 0, rejected: 1 } };
    let checked = crate::RunConfig::from_toml(text).and_then(|mut c| {
        // The hostfile's contents are not this target's input (a path could name /dev/zero).
        c.hostfile = None;
        c.validate()?;
        c.window_spec()?;
        c.http_addr()?;
        c.timely_config()?;
        Ok(())
    });
    match checked {
        Ok(()) => Outcome { events: 1, rejected: 0 },
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refused config without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// An `/alerts` request: the query string, then (after a newline) the `Accept` header, then the
/// `Last-Event-ID` header.
pub fn http_query(data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let query = parts.next().filter(|q| !q.is_empty());
    let accept = parts.next();
    let last_id = parts.next();
    match crate::observe::http::AlertsQuery::parse(query, accept, last_id) {
        Ok(q) => {
            assert!(q.limit <= 10_000, "limit {} is over the cap", q.limit);
            Outcome { events: 1, rejected: 0 }
        }
        Err(e) => {
            assert!(!e.is_empty(), "a refused query without a reason");
            Outcome { events: 0, rejected: 1 }
        }
    }
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target by name (the fuzz crate's binaries and the corpus directories are named so).
pub const TARGETS: &[(&str, Target)] = &[
    ("json_line", json_line),
    ("json_fallback", json_fallback),
    ("csv_narrow", csv_narrow),
    ("csv_any", csv_any),
    ("nab", nab),
    ("binlog", binlog),
    ("binlog_chunk", binlog_chunk),
    ("mqtt", mqtt),
    ("kafka", kafka),
    ("rules", rules),
    ("row_card", row_card),
    ("model_card", model_card),
    ("run_config", run_config),
    ("http_query", http_query),
];
