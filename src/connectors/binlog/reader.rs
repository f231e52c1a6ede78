//! Reading a log: every header and payload validated before it is decoded; events chunks
//! shared over the workers by index, optionally paced at real time × a factor.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sensorflow_operators::{Dictionary, Event, PartitionReader, Poll, SourceBatch, SourceError};

use super::*;

/// Reads the events chunks of a log that belong to one worker.
#[derive(Debug)]
pub struct LogReader {
    name: String,
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    events_chunk: u64,
    index: u64,
    peers: u64,
    dict: Dictionary,
    buf: Vec<u64>,
    /// Real-time pacing: speed factor, wall start, first event time of the file.
    pace: Option<(f64, Option<(Instant, u64)>)>,
    held: VecDeque<Event>,
    decoded: Vec<Event>,
    /// Unpaced: a checked events chunk in `buf` (its payload length) and the index of the
    /// next event to hand out.
    ready: Option<(usize, usize)>,
}

/// Most events one unpaced poll hands out: a chunk (65,536 events, 2.6 MB) is given in pieces
/// that stay in the core's cache while the operators downstream take them in turn.
const POLL_EVENTS: usize = 8192;

impl LogReader {
    /// A reader of `path` for worker `index` of `peers`; `realtime` paces the replay at event
    /// time × factor (None: as fast as possible).
    pub fn new(path: &Path, index: usize, peers: usize, dict: Dictionary, realtime: Option<f64>) -> Self {
        LogReader {
            name: format!("log:{}", path.display()),
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            events_chunk: 0,
            index: index as u64,
            peers: peers.max(1) as u64,
            dict,
            buf: Vec::new(),
            pace: realtime.map(|f| (f, None)),
            held: VecDeque::new(),
            decoded: Vec::new(),
            ready: None,
        }
    }

    fn fail(&self, msg: impl std::fmt::Display) -> SourceError {
        SourceError::fatal(&self.name, msg.to_string())
    }

    fn open(&mut self) -> Result<(), SourceError> {
        let mut file = File::open(&self.path).map_err(|e| self.fail(format!("cannot open: {e}")))?;
        let mut head = [0u8; 8];
        match file.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(self.fail("not a sensorflow log (shorter than its 8-byte header)"))
            }
            Err(e) => return Err(self.fail(format!("cannot read: {e}"))),
        }
        if &head[..6] != FILE_MAGIC {
            return Err(
                self.fail(format!("not a sensorflow log (magic {:?})", String::from_utf8_lossy(&head[..6])))
            );
        }
        let version = u16::from_le_bytes([head[6], head[7]]);
        if version != VERSION {
            return Err(
                self.fail(format!("log format version {version}; this build reads version {VERSION}"))
            );
        }
        self.offset = 8;
        self.file = Some(file);
        Ok(())
    }

    /// Reads the next chunk header, or `None` at a clean end of file.
    fn header(&mut self) -> Result<Option<Header>, SourceError> {
        let at = self.offset;
        let file = self.file.as_mut().ok_or_else(|| SourceError::fatal("log", "not open"))?;
        let mut h = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match file.read(&mut h[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("cannot read at offset {at}: {e}"))),
            }
        }
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER {
            return Err(self.fail(format!("truncated chunk header at offset {at} ({got} of {HEADER} bytes)")));
        }
        if &h[0..4] != CHUNK_MAGIC {
            return Err(self.fail(format!("bad chunk magic at offset {at} (corrupt file)")));
        }
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let version = u16_at(4);
        if version != VERSION {
            return Err(self.fail(format!("chunk at offset {at} has version {version}, expected {VERSION}")));
        }
        let header = Header {
            kind: u16_at(6),
            count: u32_at(8),
            len: u32_at(12) as usize,
            min_ts: u64_at(16),
            checksum: u64_at(32),
        };
        if header.len > MAX_PAYLOAD {
            return Err(self.fail(format!("chunk at offset {at} claims {} bytes (corrupt file)", header.len)));
        }
        match header.kind {
            KIND_EVENTS
                if header.len != VEC_HEADER + header.count as usize * std::mem::size_of::<Event>() =>
            {
                Err(self.fail(format!(
                    "events chunk at offset {at}: {} bytes do not hold {} events (corrupt file)",
                    header.len, header.count
                )))
            }
            KIND_EVENTS | KIND_NAMES => {
                self.offset += HEADER as u64;
                Ok(Some(header))
            }
            k => Err(self.fail(format!("unknown chunk kind {k} at offset {at} (corrupt file)"))),
        }
    }

    /// Reads and checks a payload into `self.buf`.
    fn payload(&mut self, h: &Header) -> Result<(), SourceError> {
        let at = self.offset - HEADER as u64;
        // Grown when a chunk needs more, never cleared: zeroing a chunk's worth of words
        // before every read cost a pass over the payload (it is overwritten by the read).
        let words = h.len.div_ceil(8);
        if self.buf.len() < words {
            self.buf.resize(words, 0);
        }
        let file = self.file.as_mut().ok_or_else(|| SourceError::fatal("log", "not open"))?;
        let bytes = codec::bytes(&mut self.buf, h.len);
        let read = file.read_exact(bytes);
        let sum_ok = read.is_ok() && xxhash_rust::xxh3::xxh3_64(bytes) == h.checksum;
        if let Err(e) = read {
            return Err(match e.kind() {
                ErrorKind::UnexpectedEof => {
                    self.fail(format!("truncated chunk at offset {at} (file ends inside it)"))
                }
                _ => self.fail(format!("cannot read chunk at offset {at}: {e}")),
            });
        }
        if !sum_ok {
            return Err(self.fail(format!("checksum mismatch in chunk at offset {at} (corrupt file)")));
        }
        self.offset += h.len as u64;
        Ok(())
    }

    fn skip(&mut self, h: &Header) -> Result<(), SourceError> {
        self.offset += h.len as u64;
        let at = self.offset;
        let file = self.file.as_mut().ok_or_else(|| SourceError::fatal("log", "not open"))?;
        file.seek(SeekFrom::Start(at)).map_err(|e| self.fail(format!("cannot seek to {at}: {e}")))?;
        Ok(())
    }

    fn register_names(&mut self, len: usize) -> Result<(), SourceError> {
        let at = self.offset - len as u64;
        let bytes = codec::bytes(&mut self.buf, len).to_vec();
        let mut i = 0;
        while i < bytes.len() {
            if i + 11 > bytes.len() {
                return Err(self.fail(format!("names chunk at offset {at} is cut short")));
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&bytes[i..i + 8]);
            let id = u64::from_le_bytes(id);
            let kind = bytes[i + 8];
            let n = u16::from_le_bytes([bytes[i + 9], bytes[i + 10]]) as usize;
            let Some(name) = bytes.get(i + 11..i + 11 + n) else {
                return Err(self.fail(format!("names chunk at offset {at} is cut short")));
            };
            let name = std::str::from_utf8(name)
                .map_err(|_| self.fail(format!("names chunk at offset {at}: a name is not UTF-8")))?;
            let registered = match kind {
                0 => self.dict.device(name).0,
                1 => self.dict.metric(name).0,
                k => return Err(self.fail(format!("names chunk at offset {at}: unknown name kind {k}"))),
            };
            if registered != id {
                return Err(self.fail(format!("names chunk at offset {at}: id of {name:?} does not match")));
            }
            i += 11 + n;
        }
        Ok(())
    }

    /// Hands out the next piece of the checked chunk in `buf`, if one is being given.
    fn give_ready(&mut self, out: &mut SourceBatch) -> bool {
        let Some((len, next)) = self.ready else { return false };
        // Checked when the chunk was read.
        let events = codec::events(&self.buf, len).unwrap_or(&[]);
        let end = (next + POLL_EVENTS).min(events.len());
        out.events.extend(events[next.min(end)..end].iter().map(|e| e.0));
        self.ready = (end < events.len()).then_some((len, end));
        end > next
    }

    /// Moves held events that are due (real-time pacing) into `out`.
    fn release(&mut self, out: &mut SourceBatch) -> bool {
        let Some((factor, Some((start, base)))) = self.pace else {
            let any = !self.held.is_empty();
            out.events.extend(self.held.drain(..));
            return any;
        };
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0 * factor;
        let due = base.saturating_add(elapsed_ms as u64);
        let before = out.events.len();
        while let Some(e) = self.held.front() {
            if e.ts > due {
                break;
            }
            out.events.push(*e);
            self.held.pop_front();
        }
        out.events.len() > before
    }
}

impl PartitionReader for LogReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Paced: when the next held event falls due (a quiet source wakes then).
    fn next_due(&self) -> Option<Instant> {
        let (factor, Some((start, base))) = self.pace? else { return None };
        let next = self.held.front()?;
        Some(
            start + std::time::Duration::from_secs_f64(next.ts.saturating_sub(base) as f64 / 1000.0 / factor),
        )
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        if self.file.is_none() {
            self.open()?;
        }
        if !self.held.is_empty() {
            return Ok(if self.release(out) { Poll::Ready } else { Poll::Pending });
        }
        if self.give_ready(out) {
            return Ok(Poll::Ready);
        }
        loop {
            let Some(h) = self.header()? else { return Ok(Poll::Done) };
            match h.kind {
                KIND_NAMES => {
                    self.payload(&h)?;
                    self.register_names(h.len)?;
                }
                _ => {
                    let mine = self.events_chunk % self.peers == self.index;
                    self.events_chunk += 1;
                    if let Some((_, start @ None)) = &mut self.pace {
                        *start = Some((Instant::now(), h.min_ts));
                    }
                    if !mine {
                        self.skip(&h)?;
                        continue;
                    }
                    self.payload(&h)?;
                    let at = self.offset - h.len as u64 - HEADER as u64;
                    if codec::events(&self.buf, h.len).is_none_or(|e| e.len() != h.count as usize) {
                        return Err(
                            self.fail(format!("events chunk at offset {at} does not decode (corrupt file)"))
                        );
                    }
                    if self.pace.is_none() {
                        // Unpaced, the events are read straight from the payload, a piece a poll.
                        self.ready = Some((h.len, 0));
                        self.give_ready(out);
                        return Ok(Poll::Ready);
                    }
                    self.decoded.clear();
                    if codec::decode(&mut self.buf, h.len, &mut self.decoded).is_none() {
                        return Err(
                            self.fail(format!("events chunk at offset {at} does not decode (corrupt file)"))
                        );
                    }
                    self.held.extend(self.decoded.drain(..));
                    return Ok(if self.release(out) { Poll::Ready } else { Poll::Pending });
                }
            }
        }
    }
}
