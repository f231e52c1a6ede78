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

//!
//! The parts: this module (the format: constants, the `unsafe` codec, chunk headers),
//! `writer` ([`LogWriter`]) and `reader` ([`LogReader`], a partition reader).

mod reader;
mod writer;

use std::path::Path;

pub use reader::LogReader;
pub use writer::LogWriter;

use crate::connectors::ConnectorError;

/// File magic and format version.
pub const FILE_MAGIC: &[u8; 6] = b"SFLOG\0";
/// Format version written and understood.
pub const VERSION: u16 = 1;
pub(crate) const CHUNK_MAGIC: &[u8; 4] = b"SFCK";
pub(crate) const HEADER: usize = 40;
pub(crate) const KIND_EVENTS: u16 = 1;
pub(crate) const KIND_NAMES: u16 = 2;
/// Events per chunk written by [`LogWriter`].
pub const CHUNK_EVENTS: usize = 1 << 16;
/// Largest payload a reader accepts (a corrupt length must not allocate gigabytes).
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;
/// Bytes abomonation writes before a `Vec`'s elements (pointer, capacity, length).
pub(crate) const VEC_HEADER: usize = 24;

/// Encoding and decoding of event chunks: the one place with `unsafe`.
#[allow(unsafe_code)]
pub(crate) mod codec {
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

    /// Decodes a payload written by [`encode`]: the encoded `Vec` header ([`super::VEC_HEADER`]
    /// bytes, whose pointer, capacity and length are ignored) and then the events' bytes;
    /// `None` unless the length is exactly the header plus whole events.
    ///
    /// The events are read straight from the bytes after the header, never through the encoded
    /// length: abomonation's own decoding trusts it, and a length whose byte size overflows
    /// (found by fuzzing) made a slice far longer than the buffer.
    ///
    /// `buf` is 8-byte aligned storage (a `Vec<u64>`) holding `len` payload bytes.
    pub fn decode(buf: &mut [u64], len: usize, out: &mut Vec<Event>) -> Option<()> {
        out.extend(events(buf, len)?.iter().map(|e| e.0));
        Some(())
    }

    /// The events of a payload written by [`encode`], read in place (see [`decode`]); `None`
    /// unless the length is exactly the header plus whole events.
    pub fn events(buf: &[u64], len: usize) -> Option<&[LogEvent]> {
        let size = std::mem::size_of::<LogEvent>();
        if len > buf.len() * 8 || len < super::VEC_HEADER || (len - super::VEC_HEADER) % size != 0 {
            return None;
        }
        let count = (len - super::VEC_HEADER) / size;
        // Both the header (24) and each event (40) are whole 8-byte words.
        let words = &buf[super::VEC_HEADER / 8..len / 8];
        // SAFETY: `LogEvent` is `repr(transparent)` over `Event`, five 8-byte fields of
        // integers and a float: 40 bytes, alignment 8, no padding, every bit pattern valid. The
        // words are 8-byte aligned and exactly `count` events long (checked below).
        let (head, events, tail) = unsafe { words.align_to::<LogEvent>() };
        if !head.is_empty() || !tail.is_empty() || events.len() != count {
            return None;
        }
        Some(events)
    }
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> ConnectorError {
    ConnectorError::io(path, e)
}

/// A validated chunk header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub kind: u16,
    pub count: u32,
    pub len: usize,
    pub min_ts: u64,
    pub checksum: u64,
}
