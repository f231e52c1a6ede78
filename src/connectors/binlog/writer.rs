//! Writing a log: names chunks before the events chunks that use them, each checksummed.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sensorflow_operators::{DeviceId, Dictionary, Event, MetricId};

use super::*;
use crate::connectors::ConnectorError;

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
