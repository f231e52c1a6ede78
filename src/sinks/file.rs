//! Files: the alert file (appended, holding the ids of earlier runs), and the JSON-lines
//! files dead letters and late events go to.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Message, Sink};
use crate::Error;

/// An alert file: appended to, never rewritten, so the alerts of earlier runs stay.
#[derive(Debug)]
pub struct FileSink {
    file: LineFile,
    /// Ids of the alerts the file held when it was opened.
    existing: HashSet<String>,
}

impl FileSink {
    /// Opens `path` for appending, reading the ids of alerts it already holds. A last line cut
    /// short (the process was killed mid-write) is removed: the run that follows re-derives it.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let mut ids = HashSet::new();
        if let Ok(mut existing) = OpenOptions::new().read(true).write(true).open(path) {
            let len = existing.metadata().map_err(|e| Error::io(path, e))?.len();
            if len > 0 {
                let mut last = [0u8; 1];
                existing.seek(SeekFrom::Start(len - 1)).map_err(|e| Error::io(path, e))?;
                existing.read_exact(&mut last).map_err(|e| Error::io(path, e))?;
                if last[0] != b'\n' {
                    let keep = complete_lines_len(&mut existing, len).map_err(|e| Error::io(path, e))?;
                    existing.set_len(keep).map_err(|e| Error::io(path, e))?;
                }
                existing.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
            }
            for line in BufReader::new(existing).split(b'\n') {
                let line = line.map_err(|e| Error::io(path, e))?;
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                    if let Some(id) = v.get("id").and_then(|id| id.as_str()) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        Ok(FileSink { file: LineFile::append(path)?, existing: ids })
    }
}

impl Sink for FileSink {
    fn existing_ids(&mut self) -> Result<HashSet<String>, Error> {
        Ok(std::mem::take(&mut self.existing))
    }

    fn send(&mut self, m: &Message<'_>) -> Result<(), Error> {
        self.file.send(m)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.file.flush()
    }
}

/// Episodes that were open at dataflow time `at` according to an alert file: a `fired` before
/// `at` and no `cleared` before it, as (device, rule, episode start). Transitions at or after
/// `at` are ignored: a killed run may have written some of them ahead of its last checkpoint,
/// and the run that resumes at `at` derives them again.
pub fn open_episodes(path: &Path, at: u64) -> Result<Vec<(String, String, u64)>, Error> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut open = std::collections::BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| Error::io(path, e))?;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
        let (Some(device), Some(rule), Some(since), Some(kind), Some(end)) = (
            v["device"].as_str(),
            v["rule"].as_str(),
            v["episode_start"].as_u64(),
            v["kind"].as_str(),
            v["window_end"].as_u64(),
        ) else {
            continue;
        };
        // An alert is made at its window's last millisecond.
        if end.saturating_sub(1) >= at {
            continue;
        }
        let key = (device.to_string(), rule.to_string(), since);
        match kind {
            "fired" => open.insert(key, ()),
            _ => open.remove(&key),
        };
    }
    Ok(open.into_keys().collect())
}

/// Length of `file` up to and including its last newline (0 if it has none).
fn complete_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// A file of lines, created anew: dead letters, late events, a simulated dataset.
#[derive(Debug)]
pub struct LineFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl LineFile {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(LineFile { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 20, file) })
    }

    /// Opens `path` for appending (created if missing).
    pub fn append(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(LineFile { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Appends a line.
    pub fn write_line(&mut self, line: &str) -> Result<(), Error> {
        writeln!(self.out, "{line}").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

impl Sink for LineFile {
    fn send(&mut self, m: &Message<'_>) -> Result<(), Error> {
        self.out
            .write_all(m.payload)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(&self.path, e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        LineFile::flush(self)
    }
}
