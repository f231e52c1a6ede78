//! What sources produce besides good events: dead letters and late events.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Raw input kept in a dead letter is cut to this many bytes (the reason says how long it was).
pub const DEAD_LETTER_RAW_LIMIT: usize = 4096;

/// A record that could not become an [`Event`], kept with its raw bytes and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Which source and partition it came from (e.g. `jsonl:data.jsonl`).
    pub source: String,
    /// Where in that source: byte offset, line number or message offset.
    pub position: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The raw input, cut to [`DEAD_LETTER_RAW_LIMIT`] bytes.
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter for `raw`, keeping at most [`DEAD_LETTER_RAW_LIMIT`] bytes of it.
    pub fn new(source: &str, position: u64, reason: impl Into<String>, raw: &[u8]) -> Self {
        let keep = raw.len().min(DEAD_LETTER_RAW_LIMIT);
        DeadLetter { source: source.to_string(), position, reason: reason.into(), raw: raw[..keep].to_vec() }
    }
}

/// An event that arrived after its partition's watermark had passed it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateEvent {
    /// The event.
    pub event: Event,
    /// The watermark it missed.
    pub watermark: u64,
}
