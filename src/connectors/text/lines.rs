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

use std::collections::VecDeque;
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
    /// The ranges still to read after this one, in order.
    next: VecDeque<(u64, u64)>,
    skip_header: bool,
    /// Where the first range starts (the partition's name).
    first_start: u64,
}

impl<P: RowParser> LineReader<P> {
    /// A reader for the lines of `path` starting in `[start, end)`. With `skip_header`, the
    /// file's first line (a header) is not data.
    pub fn new(path: &Path, start: u64, end: u64, skip_header: bool, max_line: usize, parser: P) -> Self {
        Self::with_ranges(path, &[(start, end)], skip_header, max_line, parser)
    }

    /// A reader for the lines of `path` starting in any of `ranges` (ascending, disjoint),
    /// read one after the other as one partition.
    pub fn with_ranges(
        path: &Path,
        ranges: &[(u64, u64)],
        skip_header: bool,
        max_line: usize,
        parser: P,
    ) -> Self {
        let mut next: VecDeque<(u64, u64)> = ranges.iter().copied().collect();
        let (start, end) = next.pop_front().unwrap_or((0, 0));
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
            next,
            skip_header,
            first_start: start,
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
        // Read into the spare capacity (no zeroing first: `read_to_end` on a `Take` does not
        // initialise what the kernel is about to overwrite); retried on interruption.
        self.buf.reserve(CHUNK);
        if let Err(e) = file.take(CHUNK as u64).read_to_end(&mut self.buf) {
            self.buf.truncate(have);
            return Err(SourceError::fatal(&self.name, format!("read failed: {e}")));
        }
        let n = self.buf.len() - have;
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
        if self.first_start == 0 {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.first_start)
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
    /// Ends the current range: on to the next one, if any.
    fn close(&mut self) -> Poll {
        self.file = None;
        self.consumed = 0;
        self.oversize = None;
        match self.next.pop_front() {
            Some((start, end)) => {
                self.buf.clear();
                self.start = start;
                self.end = end;
                self.buf_offset = start.saturating_sub(1);
                self.eof = false;
                self.skip_partial_first = start > 0;
                self.skip_first_line = self.skip_header && start == 0;
                Poll::Ready
            }
            None => {
                self.eof = true;
                self.buf = Vec::new();
                Poll::Done
            }
        }
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

/// Bytes per block when a large file is dealt to several workers.
pub const BLOCK: u64 = 4 << 20;

/// The byte ranges of a file of `len` bytes that worker `index` of `peers` reads. A file of
/// more than a block per worker is dealt in blocks of [`BLOCK`] bytes, block k to worker
/// k mod `peers`, so the workers move through the file's event time side by side (halves
/// would start the second worker in the middle of the file's time, and everything it read
/// would wait in the graph for the first to catch up); a smaller one is split into `peers`
/// equal ranges.
pub fn worker_ranges(len: u64, peers: usize, index: usize) -> Vec<(u64, u64)> {
    let peers = peers.max(1);
    if len <= BLOCK * peers as u64 {
        return vec![split_ranges(len, peers)[index.min(peers - 1)]];
    }
    let blocks = len.div_ceil(BLOCK);
    (index as u64..blocks).step_by(peers).map(|k| (k * BLOCK, ((k + 1) * BLOCK).min(len))).collect()
}

/// Splits a file of `len` bytes into `parts` ranges.
pub fn split_ranges(len: u64, parts: usize) -> Vec<(u64, u64)> {
    let parts = parts.max(1) as u64;
    (0..parts).map(|i| (len * i / parts, len * (i + 1) / parts)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::parse::Reject;
    use sensorflow_operators::{DeviceId, MetricId};
    use std::borrow::Cow;
    use std::io::Write;

    /// Each line is a number, read as an event's `seq`.
    struct Numbers;

    impl LineParser for Numbers {
        fn parse_line(&mut self, line: &[u8]) -> Result<Event, Reject> {
            let seq = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Cow::Borrowed("not a number"))?;
            Ok(Event { device: DeviceId(1), metric: MetricId(1), ts: seq, value: 0.0, seq })
        }
    }

    #[test]
    fn worker_ranges_deal_large_files_in_blocks_and_split_small_ones() {
        assert_eq!(worker_ranges(100, 2, 1), vec![(50, 100)]);
        assert_eq!(worker_ranges(100, 1, 0), vec![(0, 100)]);
        let len = 5 * BLOCK + 7;
        assert_eq!(
            worker_ranges(len, 2, 0),
            vec![(0, BLOCK), (2 * BLOCK, 3 * BLOCK), (4 * BLOCK, 5 * BLOCK)]
        );
        assert_eq!(
            worker_ranges(len, 2, 1),
            vec![(BLOCK, 2 * BLOCK), (3 * BLOCK, 4 * BLOCK), (5 * BLOCK, len)]
        );
        assert_eq!(
            worker_ranges(len, 8, 7),
            vec![(len * 7 / 8, len)],
            "under a block per worker: equal ranges"
        );
    }

    #[test]
    fn a_file_dealt_in_blocks_is_read_whole_once_at_any_worker_count() {
        // About 15 MB of numbered lines, so 2 and 3 workers get several blocks each.
        let lines = 2_000_000u64;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("numbers.txt");
        let mut file = std::io::BufWriter::new(File::create(&path).expect("create"));
        for i in 0..lines {
            writeln!(file, "{i}").expect("write");
        }
        drop(file);
        let len = std::fs::metadata(&path).expect("metadata").len();
        assert!(len > 3 * BLOCK, "the file spans several blocks: {len}");
        for peers in [1, 2, 3] {
            let mut seen = vec![0u8; lines as usize];
            for index in 0..peers {
                let ranges = worker_ranges(len, peers, index);
                let mut reader = LineReader::with_ranges(&path, &ranges, false, 1 << 20, Numbers);
                let mut last = None;
                loop {
                    let mut batch = SourceBatch::default();
                    let poll = reader.poll(&mut batch).expect("poll");
                    assert!(batch.dead.is_empty(), "{:?}", batch.dead.first());
                    for e in &batch.events {
                        assert!(last.is_none_or(|l| e.seq > l), "each worker reads in file order");
                        last = Some(e.seq);
                        seen[e.seq as usize] += 1;
                    }
                    if poll == Poll::Done {
                        break;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "every line exactly once at {peers} workers");
        }
    }
}
