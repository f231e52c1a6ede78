//! Reading a byte range of a text file line by line, so several workers can share one file.
//!
//! A line belongs to the range its first byte falls in. A range that starts mid-line skips to
//! the next line start; the last line of a range may run past the range end. Lines longer
//! than the limit are dead-lettered (first 4 KiB kept) without buffering them whole, and a
//! last line without a newline that fails to parse is reported as truncated.
//!
//! A line may hold several events (a wide CSV row: one per metric column): the reader drives a
//! [`RowParser`], which pushes a line's events straight into the batch and the reasons any of
//! its fields was rejected into a small buffer the reader drains into dead letters. Formats
//! with one event per line implement the simpler [`LineParser`], which is a `RowParser` too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sensorflow_operators::{DeadLetter, Event, PartitionReader, Poll, SourceBatch, SourceError};

use crate::connectors::parse::Reject;

/// Turns one line (without its newline) into an event.
pub trait LineParser: 'static {
    /// Parses `line`.
    fn parse_line(&mut self, line: &[u8]) -> Result<Event, Reject>;
}

/// Turns one line (without its newline) into any number of events: what [`LineReader`] drives.
pub trait RowParser: 'static {
    /// Parses `line`, pushing its events onto `events` and, for each field rejected on its
    /// own (the line's other fields still count), the reason onto `rejects`; each becomes a
    /// dead letter carrying the whole line. `Err` rejects the whole line: the reader drops
    /// whatever this call pushed and makes one dead letter.
    fn parse_row(
        &mut self,
        line: &[u8],
        events: &mut Vec<Event>,
        rejects: &mut Vec<Reject>,
    ) -> Result<(), Reject>;
}

/// One event per line: pushed straight into the batch, no buffer in between (the JSON-lines
/// fast path costs what it did before rows existed).
impl<P: LineParser> RowParser for P {
    #[inline]
    fn parse_row(&mut self, line: &[u8], events: &mut Vec<Event>, _: &mut Vec<Reject>) -> Result<(), Reject> {
        events.push(self.parse_line(line)?);
        Ok(())
    }
}

const CHUNK: usize = 1 << 20;

/// Reads the lines starting in `[start, end)` of a file.
#[derive(Debug)]
pub struct LineReader<P> {
    name: String,
    path: PathBuf,
    file: Option<File>,
    start: u64,
    end: u64,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    consumed: usize,
    eof: bool,
    skip_partial_first: bool,
    skip_first_line: bool,
    /// Inside an over-long line: its start offset and length so far.
    oversize: Option<(u64, u64)>,
    max_line: usize,
    parser: P,
    /// Fields the parser rejected on their own in the current line (drained per line).
    rejects: Vec<Reject>,
}

impl<P: RowParser> LineReader<P> {
    /// A reader for the lines of `path` starting in `[start, end)`. With `skip_header`, the
    /// file's first line (a header) is not data.
    pub fn new(path: &Path, start: u64, end: u64, skip_header: bool, max_line: usize, parser: P) -> Self {
        LineReader {
            name: path.display().to_string(),
            path: path.to_path_buf(),
            file: None,
            start,
            end,
            buf_offset: start.saturating_sub(1),
            buf: Vec::with_capacity(CHUNK),
            consumed: 0,
            eof: false,
            skip_partial_first: start > 0,
            skip_first_line: skip_header && start == 0,
            oversize: None,
            max_line,
            parser,
            rejects: Vec::new(),
        }
    }

    fn open(&mut self) -> Result<(), SourceError> {
        let mut file = File::open(&self.path)
            .map_err(|e| SourceError::fatal(&self.name, format!("cannot open: {e}")))?;
        file.seek(SeekFrom::Start(self.buf_offset))
            .map_err(|e| SourceError::fatal(&self.name, format!("cannot seek: {e}")))?;
        self.file = Some(file);
        Ok(())
    }

    fn fill(&mut self) -> Result<(), SourceError> {
        // Keep the unconsumed tail, then read another chunk after it.
        self.buf.drain(..self.consumed);
        self.buf_offset += self.consumed as u64;
        self.consumed = 0;
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let have = self.buf.len();
        self.buf.resize(have + CHUNK, 0);
        let n = loop {
            match file.read(&mut self.buf[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(SourceError::fatal(&self.name, format!("read failed: {e}")));
                }
            }
        };
        self.buf.truncate(have + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

/// Where a line's parse results go: the batch, and the buffer of rejected fields.
struct Sink<'a> {
    name: &'a str,
    out: &'a mut SourceBatch,
    rejects: &'a mut Vec<Reject>,
}

fn emit<P: RowParser>(parser: &mut P, sink: Sink<'_>, line: &[u8], at: u64, last_without_newline: bool) {
    let Sink { name, out, rejects } = sink;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let before = out.events.len();
    let dead = |reason: Reject| {
        if last_without_newline {
            DeadLetter::new(
                name,
                at,
                format!("truncated last line (no newline at end of file): {reason}"),
                line,
            )
        } else {
            DeadLetter::new(name, at, reason, line)
        }
    };
    match parser.parse_row(line, &mut out.events, rejects) {
        Ok(()) if rejects.is_empty() => {}
        Ok(()) => out.dead.extend(rejects.drain(..).map(dead)),
        Err(reason) => {
            out.events.truncate(before);
            rejects.clear();
            out.dead.push(dead(reason));
        }
    }
}

/// Records a poll hands over at most.
const BATCH: usize = 16_384;

impl<P: RowParser> PartitionReader for LineReader<P> {
    fn name(&self) -> String {
        if self.start == 0 {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.start)
        }
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        if self.file.is_none() {
            if self.eof || self.start >= self.end {
                return Ok(Poll::Done);
            }
            self.open()?;
        }
        loop {
            let Some(nl) = memchr::memchr(b'\n', &self.buf[self.consumed..]) else {
                let pending = (self.buf.len() - self.consumed) as u64;
                let line_start = self.buf_offset + self.consumed as u64;
                if let Some((_, len)) = self.oversize.as_mut() {
                    *len += pending;
                    self.consumed = self.buf.len();
                } else if pending > self.max_line as u64 {
                    let ours = !self.skip_partial_first && !self.skip_first_line && line_start < self.end;
                    if ours {
                        let reason = format!("line longer than the {}-byte limit", self.max_line);
                        out.dead.push(DeadLetter::new(
                            &self.name,
                            line_start,
                            reason,
                            &self.buf[self.consumed..],
                        ));
                    }
                    self.oversize = Some((line_start, pending));
                    self.consumed = self.buf.len();
                }
                if self.eof {
                    return Ok(self.finish_tail(out));
                }
                self.fill()?;
                if out.events.len() + out.dead.len() >= BATCH {
                    return Ok(Poll::Ready);
                }
                continue;
            };
            let (from, to) = (self.consumed, self.consumed + nl);
            self.consumed = to + 1;
            let line_start = self.buf_offset + from as u64;
            if self.skip_partial_first {
                // The line straddling our start belongs to the previous range.
                self.skip_partial_first = false;
                self.oversize = None;
                continue;
            }
            if let Some((at, _)) = self.oversize.take() {
                // This newline ends an over-long line, already reported.
                self.skip_first_line = false;
                if at >= self.end {
                    return Ok(self.close());
                }
                continue;
            }
            if line_start >= self.end {
                return Ok(self.close());
            }
            if self.skip_first_line {
                self.skip_first_line = false;
                continue;
            }
            let sink = Sink { name: &self.name, out, rejects: &mut self.rejects };
            emit(&mut self.parser, sink, &self.buf[from..to], line_start, false);
            if out.events.len() + out.dead.len() >= BATCH {
                return Ok(Poll::Ready);
            }
        }
    }
}

impl<P: RowParser> LineReader<P> {
    fn close(&mut self) -> Poll {
        self.eof = true;
        self.file = None;
        self.buf = Vec::new();
        self.consumed = 0;
        Poll::Done
    }

    /// Handles what is left at end of file: a last line without a newline.
    fn finish_tail(&mut self, out: &mut SourceBatch) -> Poll {
        let line_start = self.buf_offset + self.consumed as u64;
        let ours = self.oversize.is_none() && !self.skip_partial_first && line_start < self.end;
        if ours && self.consumed < self.buf.len() {
            if self.skip_first_line {
                self.skip_first_line = false;
            } else {
                let (from, to) = (self.consumed, self.buf.len());
                let sink = Sink { name: &self.name, out, rejects: &mut self.rejects };
                emit(&mut self.parser, sink, &self.buf[from..to], line_start, true);
            }
        }
        self.close()
    }
}

/// Splits a file of `len` bytes into `parts` ranges.
pub fn split_ranges(len: u64, parts: usize) -> Vec<(u64, u64)> {
    let parts = parts.max(1) as u64;
    (0..parts).map(|i| (len * i / parts, len * (i + 1) / parts)).collect()
}
