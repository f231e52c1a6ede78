//! The one writer for records that leave the main stream: dead letters (bad input, with the
//! reason and the raw bytes) and late events. The engine, the bridge and `record` all use it.

use std::path::Path;

use sensorflow_operators::{DeadLetter, Dictionary, LateEvent};

use super::{dead_letter_json, late_json, LineFile};
use crate::Error;

/// Dead letters or late events: every one to a JSON-lines file when there is one, otherwise
/// the first `log_limit` to the log (a run without a dead-letter file still shows why records
/// were rejected, without flooding the terminal).
#[derive(Debug)]
pub struct Diverted {
    file: Option<LineFile>,
    label: &'static str,
    log_limit: u64,
    seen: u64,
}

impl Diverted {
    /// Writes to `path` (created, truncated) if given; otherwise logs the first `log_limit`
    /// records as `"<label>: <json>"`.
    pub fn new(path: Option<&Path>, label: &'static str, log_limit: u64) -> Result<Self, Error> {
        Ok(Diverted { file: path.map(LineFile::create).transpose()?, label, log_limit, seen: 0 })
    }

    /// Writes one dead letter.
    pub fn dead_letter(&mut self, d: &DeadLetter) -> Result<(), Error> {
        self.line(|| dead_letter_json(d))
    }

    /// Writes one late event, names resolved through `dict`.
    pub fn late(&mut self, l: &LateEvent, dict: &Dictionary) -> Result<(), Error> {
        self.line(|| late_json(l, dict))
    }

    /// Records seen so far (written or logged or neither).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn line(&mut self, render: impl FnOnce() -> String) -> Result<(), Error> {
        self.seen += 1;
        match &mut self.file {
            Some(file) => file.write_line(&render()),
            None => {
                if self.seen <= self.log_limit {
                    tracing::warn!(target: "sensorflow::dead_letters", "{}: {}", self.label, render());
                }
                Ok(())
            }
        }
    }

    /// Flushes the file, if any.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.file.as_mut().map_or(Ok(()), LineFile::flush)
    }
}
