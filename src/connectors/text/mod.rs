//! Text files: JSON lines and CSV, each file dealt to the workers in byte ranges (blocks in
//! turn for a large file, see [`lines::worker_ranges`]).
//! `lines` reads a byte range line by line, `json` turns a line into an event and `csv` a line
//! into one event (narrow files) or one per metric column (wide files).

pub mod csv;
pub mod json;
pub mod lines;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sensorflow_operators::{Event, PartitionReader};

use crate::connectors::parse::{EventBuilder, Reject};
use crate::connectors::{ConnectorError, ReaderContext};
use csv::{CsvFormat, CsvRows};
use json::parse_json;
use lines::{worker_ranges, LineParser, LineReader, RowParser};

/// Longest accepted line, bytes; longer lines are dead-lettered.
pub const MAX_LINE: usize = 1 << 20;

struct JsonLines(EventBuilder);

impl LineParser for JsonLines {
    #[inline]
    fn parse_line(&mut self, line: &[u8]) -> Result<Event, Reject> {
        parse_json(line, &mut self.0)
    }
}

fn file_len(path: &Path) -> Result<u64, ConnectorError> {
    let meta = std::fs::metadata(path).map_err(|e| ConnectorError::io(path, e))?;
    if !meta.is_file() {
        return Err(ConnectorError::Config(format!("{} is not a file", path.display())));
    }
    Ok(meta.len())
}

/// This worker's ranges of every JSON-lines file in `paths`.
pub fn jsonl_readers(
    paths: &[PathBuf],
    ctx: &ReaderContext,
) -> Result<Vec<Box<dyn PartitionReader>>, ConnectorError> {
    ranged(paths, ctx, false, |_| Ok(JsonLines(ctx.builder())))
}

/// This worker's byte range of each file, read line by line with the parser `parser` makes
/// for it. A file with a header skips it (and an empty one, having none, is skipped whole).
fn ranged<P: RowParser>(
    paths: &[PathBuf],
    ctx: &ReaderContext,
    header: bool,
    mut parser: impl FnMut(&Path) -> Result<P, ConnectorError>,
) -> Result<Vec<Box<dyn PartitionReader>>, ConnectorError> {
    let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
    for path in paths {
        let len = file_len(path)?;
        if header && len == 0 {
            continue;
        }
        let parser = parser(path)?;
        let ranges = worker_ranges(len, ctx.peers, ctx.index);
        readers.push(Box::new(LineReader::with_ranges(path, &ranges, header, MAX_LINE, parser)));
    }
    Ok(readers)
}

/// Reads the header line of a CSV file (at most [`MAX_LINE`] bytes, so a header of any
/// number of columns is read whole while memory stays bounded).
pub fn read_header(path: &Path) -> Result<Vec<u8>, ConnectorError> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let mut header = Vec::new();
    BufReader::new(file)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut header)
        .map_err(|e| ConnectorError::io(path, e))?;
    if header.len() > MAX_LINE {
        return Err(ConnectorError::Config(format!(
            "{}: header line longer than {MAX_LINE} bytes",
            path.display()
        )));
    }
    while header.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        header.pop();
    }
    Ok(header)
}

/// This worker's ranges of every CSV file in `paths`, narrow (`device,metric,ts,value[,seq]`)
/// or wide (a timestamp column and a column per metric), as each file's header says
/// ([`csv`]). Every worker reads the header from the file's start; only the worker whose
/// range starts there skips it as data.
pub fn csv_readers(
    paths: &[PathBuf],
    ctx: &ReaderContext,
) -> Result<Vec<Box<dyn PartitionReader>>, ConnectorError> {
    ranged(paths, ctx, true, |path| {
        let header = read_header(path)?;
        let format = CsvFormat::from_header(&header, path)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", path.display())))?;
        Ok(CsvRows::new(format, ctx.builder()))
    })
}
