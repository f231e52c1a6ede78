//! The NAB corpus layout: `data/<category>/<file>.csv` with `timestamp,value`; each file is
//! one device named `<category>/<file>` with metric `value`, its row number as seq. Files
//! are spread over workers round-robin.

use std::path::{Path, PathBuf};

use sensorflow_models::nab::{corpus_files, NabError};
use sensorflow_operators::{Event, PartitionReader};

use super::parse::{EventBuilder, Reject};
use super::text::lines::{LineParser, LineReader};
use super::text::{read_header, MAX_LINE};
use super::{ConnectorError, ReaderContext};
use crate::timefmt::parse_datetime;

/// Every data file of a NAB corpus under `root` (`root/data/…` or `root/…`), sorted by
/// device name, with that name (`<category>/<file>`): the models crate's one corpus walk.
pub fn nab_files(root: &Path) -> Result<Vec<(String, PathBuf)>, ConnectorError> {
    let files = corpus_files(root).map_err(|e| match e {
        NabError::Io { path, source } => ConnectorError::io(&path, source),
        other => ConnectorError::Config(other.to_string()),
    })?;
    let mut files: Vec<(String, PathBuf)> = files.into_iter().map(|f| (f.device(), f.path)).collect();
    files.sort();
    Ok(files)
}

/// A NAB file's rows (`timestamp,value`) as events of one device and the metric `value`.
pub(crate) struct NabLines {
    device: Vec<u8>,
    builder: EventBuilder,
    row: u64,
}

impl NabLines {
    /// A parser for the rows of `device`'s file.
    pub(crate) fn new(device: &[u8], builder: EventBuilder) -> Self {
        NabLines { device: device.to_vec(), builder, row: 0 }
    }
}

impl LineParser for NabLines {
    fn parse_line(&mut self, line: &[u8]) -> Result<Event, Reject> {
        self.row += 1;
        let text = std::str::from_utf8(line).map_err(|_| Reject::Borrowed("line is not valid UTF-8"))?;
        let (ts, value) = text.split_once(',').ok_or(Reject::Borrowed("expected timestamp,value"))?;
        let ts = parse_datetime(ts)
            .ok_or_else(|| Reject::Owned(format!("timestamp {ts:?} is not YYYY-MM-DD HH:MM:SS")))?;
        let value: f64 =
            value.trim().parse().map_err(|_| Reject::Owned(format!("value {value:?} is not a number")))?;
        self.builder.build(&self.device, b"value", ts, value, self.row)
    }
}

/// This worker's files of the NAB corpus at `root`.
pub fn nab_readers(
    root: &Path,
    ctx: &ReaderContext,
) -> Result<Vec<Box<dyn PartitionReader>>, ConnectorError> {
    let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
    for (i, (name, path)) in nab_files(root)?.into_iter().enumerate() {
        if i % ctx.peers != ctx.index {
            continue;
        }
        let header = read_header(&path)?;
        if header != b"timestamp,value" {
            return Err(ConnectorError::Config(format!(
                "{}: expected header timestamp,value",
                path.display()
            )));
        }
        let len = std::fs::metadata(&path).map_err(|e| ConnectorError::io(&path, e))?.len();
        let parser = NabLines::new(name.as_bytes(), ctx.builder());
        readers.push(Box::new(LineReader::new(&path, 0, len, true, MAX_LINE, parser)));
    }
    Ok(readers)
}
