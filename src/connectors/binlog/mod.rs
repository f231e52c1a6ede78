//! The binary event log: `sensorflow record` writes it, `--source log` / `replay` reads it.
//!
//! ```text
//! file   := "SFLOG" 0x00 version:u16le  chunk*
//! chunk  := header payload
//! header := "SFCK" version:u16 kind:u16 count:u32 byte_len:u32 min_ts:u64 max_ts:u64 checksum:u64
//!           (40 bytes, little endian; checksum = XXH3-64 of the payload)
//! kind 1 (events): payload = abomonation encoding of Vec<Event> (24-byte header + 40 bytes/event)
//! kind 2 (names):  payload = (id:u64 kind:u8 len:u16 bytes)*; kind 0 device, 1 metric
//! ```
//!
//! Names chunks come before the first events chunk that uses them, so a reader that skips to
//! any events chunk after reading the names before it can resolve every id. Every header and
//! payload is validated (magic, version, kind, lengths, checksum, and the names' ids against
//! their hashes) *before* anything is decoded, so a corrupt or truncated file is a clear error
//! naming the chunk and its offset, never undefined behaviour. Workers share a file by chunk:
//! events chunk `j` belongs to worker `j % peers`.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sensorflow_operators::{
    DeviceId, Dictionary, Event, MetricId, PartitionReader, Poll, SourceBatch, SourceError,
};

use crate::connectors::ConnectorError;

/// File magic and format version.
pub const FILE_MAGIC: &[u8; 6] = b"SFLOG\0";
/// Format version written and understood.
pub const VERSION: u16 = 1;
const CHUNK_MAGIC: &[u8; 4] = b"SFCK";
const HEADER: usize = 40;
const KIND_EVENTS: u16 = 1;
const KIND_NAMES: u16 = 2;
/// Events per chunk written by [`LogWriter`].
pub const CHUNK_EVENTS: usize = 1 << 16;
/// Largest payload a reader accepts (a corrupt length must not allocate gigabytes).
const MAX_PAYLOAD: usize = 64 << 20;
/// Bytes abomonation writes before a `Vec`'s elements (pointer, capacity, length).
const VEC_HEADER: usize = 24;

/// Encoding and decoding of event chunks: the one place with `unsafe`.
#[allow(unsafe_code)]
mod codec {
    use abomonation::Abomonation;
    use sensorflow_operators::Event;

    /// An event as abomonation sees it.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct LogEvent(pub Event);

    // `Event` is `Copy` plain data (five 8-byte fields) that owns no memory, so the default
    // `Abomonation` methods (copy the bytes, nothing to fix up) are exactly right.
    impl Abomonation for LogEvent {}

    /// The first `len` bytes of an 8-byte-aligned buffer.
    pub fn bytes(buf: &mut [u64], len: usize) -> &mut [u8] {
        // SAFETY: any bit pattern is a valid `u8` and `u8` has alignment 1, so the whole
        // buffer is the middle slice.
        let (_, bytes, _) = unsafe { buf.align_to_mut::<u8>() };
        &mut bytes[..len]
    }

    /// Appends the abomonation encoding of `events` to `out`.
    pub fn encode(events: &[Event], out: &mut Vec<u8>) {
        let v: Vec<LogEvent> = events.iter().copied().map(LogEvent).collect();
        // SAFETY: `encode` only reads `v`; writing to a `Vec<u8>` cannot fail.
        let _ = unsafe { abomonation::encode(&v, out) };
    }

    /// Decodes a payload that has already passed its checksum and whose length was checked to
    /// be exactly `super::VEC_HEADER + count * 40`; `None` if abomonation disagrees.
    ///
    /// `buf` is 8-byte aligned storage (a `Vec<u64>`) holding `len` payload bytes.
    pub fn decode(buf: &mut [u64], len: usize, out: &mut Vec<Event>) -> Option<()> {
        if len > buf.len() * 8 {
            return None;
        }
        let bytes = bytes(buf, len);
        // SAFETY: the bytes are 8-byte aligned, checksummed and of the exact length a
        // `Vec<LogEvent>` of the header's count encodes to; every bit pattern is a valid
        // `Event` (integers and a float), and abomonation bounds-checks the element bytes.
        let (v, rest) = unsafe { abomonation::decode::<Vec<LogEvent>>(bytes) }?;
        if !rest.is_empty() {
            return None;
        }
        out.extend(v.iter().map(|e| e.0));
        Some(())
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::io(path, e)
}

/// Writes a binary log.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    written_names: HashSet<(u8, u64)>,
    payload: Vec<u8>,
    names: Vec<u8>,
    events: u64,
    chunks: u64,
}

impl LogWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, ConnectorError> {
        let file = File::create(path).map_err(|e| io_err(path, e))?;
        let mut out = BufWriter::with_capacity(4 << 20, file);
        out.write_all(FILE_MAGIC).map_err(|e| io_err(path, e))?;
        out.write_all(&VERSION.to_le_bytes()).map_err(|e| io_err(path, e))?;
        Ok(LogWriter {
            path: path.to_path_buf(),
            out,
            written_names: HashSet::new(),
            payload: Vec::new(),
            names: Vec::new(),
            events: 0,
            chunks: 0,
        })
    }

    /// Appends `events` as chunks of at most [`CHUNK_EVENTS`], preceded by the names they
    /// introduce (looked up in `dict`).
    pub fn write(&mut self, events: &[Event], dict: &Dictionary) -> Result<(), ConnectorError> {
        for chunk in events.chunks(CHUNK_EVENTS) {
            self.names.clear();
            for e in chunk {
                for (kind, id) in [(0u8, e.device.0), (1u8, e.metric.0)] {
                    if self.written_names.insert((kind, id)) {
                        let name = match kind {
                            0 => dict.device_name(DeviceId(id)),
                            _ => dict.metric_name(MetricId(id)),
                        };
                        let len = u16::try_from(name.len()).map_err(|_| {
                            ConnectorError::Config(format!("name longer than 65535 bytes: {name:.40}…"))
                        })?;
                        self.names.extend_from_slice(&id.to_le_bytes());
                        self.names.push(kind);
                        self.names.extend_from_slice(&len.to_le_bytes());
                        self.names.extend_from_slice(name.as_bytes());
                    }
                }
            }
            if !self.names.is_empty() {
                let names = std::mem::take(&mut self.names);
                self.chunk(KIND_NAMES, 0, 0, 0, &names)?;
                self.names = names;
            }
            self.payload.clear();
            codec::encode(chunk, &mut self.payload);
            let min = chunk.iter().map(|e| e.ts).min().unwrap_or(0);
            let max = chunk.iter().map(|e| e.ts).max().unwrap_or(0);
            let payload = std::mem::take(&mut self.payload);
            self.chunk(KIND_EVENTS, chunk.len() as u32, min, max, &payload)?;
            self.payload = payload;
            self.events += chunk.len() as u64;
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        kind: u16,
        count: u32,
        min: u64,
        max: u64,
        payload: &[u8],
    ) -> Result<(), ConnectorError> {
        let mut h = [0u8; HEADER];
        h[0..4].copy_from_slice(CHUNK_MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&kind.to_le_bytes());
        h[8..12].copy_from_slice(&count.to_le_bytes());
        h[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[16..24].copy_from_slice(&min.to_le_bytes());
        h[24..32].copy_from_slice(&max.to_le_bytes());
        h[32..40].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
        self.out.write_all(&h).map_err(|e| io_err(&self.path, e))?;
        self.out.write_all(payload).map_err(|e| io_err(&self.path, e))?;
        self.chunks += 1;
        Ok(())
    }

    /// Flushes and syncs; returns (events, chunks) written.
    pub fn finish(mut self) -> Result<(u64, u64), ConnectorError> {
        self.out.flush().map_err(|e| io_err(&self.path, e))?;
        self.out.get_ref().sync_all().map_err(|e| io_err(&self.path, e))?;
        Ok((self.events, self.chunks))
    }
}

/// A validated chunk header.
#[derive(Clone, Copy, Debug)]
struct Header {
    kind: u16,
    count: u32,
    len: usize,
    min_ts: u64,
    checksum: u64,
}

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
}

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
        self.buf.clear();
        self.buf.resize(h.len.div_ceil(8), 0);
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

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        if self.file.is_none() {
            self.open()?;
        }
        if !self.held.is_empty() {
            return Ok(if self.release(out) { Poll::Ready } else { Poll::Pending });
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
                    self.decoded.clear();
                    let at = self.offset - h.len as u64 - HEADER as u64;
                    if codec::decode(&mut self.buf, h.len, &mut self.decoded).is_none()
                        || self.decoded.len() != h.count as usize
                    {
                        return Err(
                            self.fail(format!("events chunk at offset {at} does not decode (corrupt file)"))
                        );
                    }
                    if self.pace.is_none() {
                        out.events.append(&mut self.decoded);
                        return Ok(Poll::Ready);
                    }
                    self.held.extend(self.decoded.drain(..));
                    return Ok(if self.release(out) { Poll::Ready } else { Poll::Pending });
                }
            }
        }
    }
}
