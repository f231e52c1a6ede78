//! Snapshots of operator state at cut points of event time, so a restarted run resumes with
//! the state an uninterrupted run had (issue 17).
//!
//! A stateful operator (the series model, the device model) processes its input in
//! event-time order once the frontier passes it, so after it has processed everything before
//! time `c` and nothing after, its state is a function of the input before `c` alone. Every
//! `every` ms of event time it stops at such a cut `c`, writes its state there, and only then
//! goes on; it holds a capability at the next cut, so the graph's output frontier cannot pass a
//! cut before every operator instance has written its snapshot of it. A run that records an
//! output frontier `M` (beside its committed offsets) therefore has, in every instance, a
//! snapshot of the cut `floor(M / every) · every`.
//!
//! A restarted run re-reads the input from the committed offsets: everything from a recovery
//! horizon before `M` on. Each instance restores its newest snapshot at or below `M`, ignores
//! the re-read input before that snapshot's cut (already in the state) and processes the rest
//! as the uninterrupted run did. `every` is a quarter of the horizon, and a snapshot is only
//! used when its cut is at most half the horizon before `M`, so the windows after the cut are
//! re-read whole.
//!
//! Files: `<dir>/<operator>-<worker>of<peers>-<cut>.state`, each a header (magic, format
//! version, operator, worker, workers in all, the cut range the state is valid for, body length,
//! CRC-32 of the body) and a bincode body, written to a temporary file, synced and renamed, so a
//! file is whole or absent. A corrupt or foreign file is a clear error; the fallback is to delete
//! the directory, which rebuilds state from the recovery horizon alone (state older than the
//! horizon, such as a model's normal statistics, then starts again).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"SFSTATE\n";

/// Why snapshots could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading, writing or listing failed (a retry may help: disk full, permissions).
    #[error("operator state snapshot {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is damaged or not a snapshot (retrying does not help).
    #[error(
        "operator state snapshot {path} is corrupt ({what}); delete {dir} to restart from the \
         recovery horizon alone (older model state is then learned again)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// A file was written by another snapshot format (retrying does not help).
    #[error(
        "operator state snapshot {path} has format {found}, this build reads format \
         {SNAPSHOT_FORMAT}; delete {dir} to restart from the recovery horizon alone"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The snapshots were taken by a run with other models or settings (retrying does not help).
    #[error(
        "operator state snapshot {path} was taken with {found:?}, this run has {expected:?}; \
         run with those settings, or delete {dir} to restart from the recovery horizon alone"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The models and settings it was taken with.
        found: String,
        /// This run's.
        expected: String,
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The snapshots were taken with another number of workers (state is sharded by worker).
    #[error(
        "the operator state in {dir} was taken with {found} workers in all, this run has {peers}: \
         restart with {found} workers (processes × workers per process), or delete {dir} to \
         restart from the recovery horizon alone"
    )]
    Workers {
        /// The snapshot directory.
        dir: PathBuf,
        /// Workers in all when the snapshots were taken.
        found: usize,
        /// Workers in all now.
        peers: usize,
    },
    /// No snapshot of an operator covers the resume point (retrying does not help).
    #[error(
        "no operator state snapshot of {operator} (worker {worker}) in {dir} is within half the \
         recovery horizon below the resume point {resume} (newest: {newest:?}); delete {dir} to \
         restart from the recovery horizon alone"
    )]
    Missing {
        /// The snapshot directory.
        dir: PathBuf,
        /// The operator.
        operator: String,
        /// The worker.
        worker: usize,
        /// The resume point (dataflow time).
        resume: u64,
        /// The newest cut found at or below the resume point.
        newest: Option<u64>,
    },
}

impl SnapshotError {
    /// Whether trying again (after fixing the disk) could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SnapshotError::Io { .. })
    }
}

/// A restored state: valid for every cut in `from..=to` (no input between them).
#[derive(Debug)]
pub struct Restored<S> {
    /// The cut the instance resumes at: it ignores input before it.
    pub at: u64,
    /// The state.
    pub state: S,
}

/// The snapshot directory of a run, shared by its operators.
#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    every: u64,
    horizon: u64,
    resume: u64,
    /// The models and settings the state belongs to (a restore with others is refused).
    identity: String,
    /// The newest output frontier the run has recorded (files wholly older than a horizon
    /// before it are pruned).
    durable: AtomicU64,
    failed: Mutex<Option<SnapshotError>>,
    written: AtomicU64,
}

impl Snapshots {
    /// Snapshots in `dir` every quarter of `horizon_ms` of event time; `resume` is the output
    /// frontier a previous run recorded (0: a fresh start, whose old files are removed);
    /// `identity` names the models and settings the state belongs to.
    pub fn new(
        dir: impl Into<PathBuf>,
        horizon_ms: u64,
        resume: u64,
        identity: impl Into<String>,
    ) -> Result<Self, SnapshotError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io { path: dir.clone(), source })?;
        if resume == 0 {
            // A fresh start: snapshots of an earlier job in this directory mean nothing now.
            let io = |source| SnapshotError::Io { path: dir.clone(), source };
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.extension().is_some_and(|e| e == "state" || e == "tmp") {
                    std::fs::remove_file(&path)
                        .map_err(|source| SnapshotError::Io { path: path.clone(), source })?;
                }
            }
        }
        Ok(Snapshots {
            dir,
            every: (horizon_ms / 4).max(1),
            horizon: horizon_ms,
            resume,
            identity: identity.into(),
            durable: AtomicU64::new(resume),
            failed: Mutex::new(None),
            written: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Event time between cuts (ms).
    pub fn every(&self) -> u64 {
        self.every
    }

    /// The first cut after `t`.
    pub fn next_cut(&self, t: u64) -> u64 {
        (t / self.every).saturating_add(1).saturating_mul(self.every)
    }

    /// Notes that the run recorded `frontier` as durable (older files may go).
    pub fn recorded(&self, frontier: u64) {
        self.durable.fetch_max(frontier, Ordering::Relaxed);
    }

    /// The first error writing a snapshot (the run must not record a frontier after one).
    pub fn take_failure(&self) -> Option<SnapshotError> {
        crate::lock(&self.failed).take()
    }

    /// Snapshot files written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn file(&self, operator: &str, worker: usize, peers: usize, to: u64) -> PathBuf {
        self.dir.join(format!("{operator}-{worker}of{peers}-{to:020}.state"))
    }

    /// Writes `state`, valid for every cut in `from..=to`, and prunes this instance's files
    /// wholly older than a horizon before the recorded frontier. A failure is kept for
    /// [`Self::take_failure`] (the run then stops recording progress).
    pub fn write<S: Serialize>(
        &self,
        operator: &str,
        worker: usize,
        peers: usize,
        from: u64,
        to: u64,
        state: &S,
    ) {
        if let Err(e) = self.try_write(operator, worker, peers, from, to, state) {
            self.fail(e);
        }
    }

    /// Keeps the first failure for [`Self::take_failure`].
    pub fn fail(&self, e: SnapshotError) {
        tracing::error!("{e}");
        let mut slot = crate::lock(&self.failed);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn try_write<S: Serialize>(
        &self,
        operator: &str,
        worker: usize,
        peers: usize,
        from: u64,
        to: u64,
        state: &S,
    ) -> Result<(), SnapshotError> {
        let body = bincode::serialize(state).map_err(|e| SnapshotError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut bytes = Vec::with_capacity(body.len() + 64 + operator.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
        bytes.extend_from_slice(&(operator.len() as u32).to_le_bytes());
        bytes.extend_from_slice(operator.as_bytes());
        bytes.extend_from_slice(&(self.identity.len() as u32).to_le_bytes());
        bytes.extend_from_slice(self.identity.as_bytes());
        bytes.extend_from_slice(&(worker as u64).to_le_bytes());
        bytes.extend_from_slice(&(peers as u64).to_le_bytes());
        bytes.extend_from_slice(&from.to_le_bytes());
        bytes.extend_from_slice(&to.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let path = self.file(operator, worker, peers, to);
        let tmp = path.with_extension("tmp");
        let io = |source| SnapshotError::Io { path: path.clone(), source };
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        self.written.fetch_add(1, Ordering::Relaxed);
        // Prune: files whose whole range is more than a horizon before the recorded frontier.
        let keep_from = self.durable.load(Ordering::Relaxed).saturating_sub(self.horizon);
        for (file_to, file) in self.files(operator, worker, peers)? {
            if file_to < keep_from && file_to < to {
                let _ = std::fs::remove_file(file);
            }
        }
        Ok(())
    }

    /// This instance's files (cut `to`, path), oldest first.
    fn files(
        &self,
        operator: &str,
        worker: usize,
        peers: usize,
    ) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
        let mut out = Vec::new();
        for f in self.list()? {
            if f.operator == operator && f.worker == worker && f.peers == peers {
                out.push((f.to, f.path));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every snapshot file in the directory, from its name.
    fn list(&self) -> Result<Vec<FileName>, SnapshotError> {
        let io = |source| SnapshotError::Io { path: self.dir.clone(), source };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(stem) = name.strip_suffix(".state") else { continue };
            let mut parts = stem.rsplitn(3, '-');
            let (Some(to), Some(wp), Some(op)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let Some((w, p)) = wp.split_once("of") else { continue };
            let (Ok(to), Ok(w), Ok(p)) = (to.parse::<u64>(), w.parse::<usize>(), p.parse::<usize>()) else {
                continue;
            };
            out.push(FileName { operator: op.to_string(), worker: w, peers: p, to, path });
        }
        Ok(out)
    }

    /// On a resume, the state of `operator` at worker `worker` of `peers` to resume from
    /// (`None` on a fresh start, or when the previous run wrote no snapshot of the operator:
    /// its state is then rebuilt from the horizon).
    pub fn restore<S: DeserializeOwned>(
        &self,
        operator: &str,
        worker: usize,
        peers: usize,
    ) -> Result<Option<Restored<S>>, SnapshotError> {
        let Some((at, path, body)) = self.select(operator, worker, peers)? else { return Ok(None) };
        let state = bincode::deserialize(&body).map_err(|e| SnapshotError::Corrupt {
            path,
            what: format!("the state does not decode: {e}"),
            dir: self.dir.clone(),
        })?;
        Ok(Some(Restored { at, state }))
    }

    /// Checks, before the workers start, that [`Self::restore`] will find a usable file of
    /// `operator` for every worker in `workers` (of `peers`), so a bad snapshot stops the run
    /// before it reads or writes anything.
    pub fn check(
        &self,
        operator: &str,
        workers: std::ops::Range<usize>,
        peers: usize,
    ) -> Result<(), SnapshotError> {
        for worker in workers {
            self.select(operator, worker, peers)?;
        }
        Ok(())
    }

    /// The file a resume restores: (cut, path, body).
    fn select(
        &self,
        operator: &str,
        worker: usize,
        peers: usize,
    ) -> Result<Option<(u64, PathBuf, Vec<u8>)>, SnapshotError> {
        if self.resume == 0 {
            return Ok(None);
        }
        let all = self.list()?;
        if all.iter().all(|f| f.operator != operator) {
            tracing::warn!(
                "no snapshot of {operator} in {}: its state is rebuilt from the recovery horizon alone",
                self.dir.display()
            );
            return Ok(None);
        }
        if let Some(f) = all.iter().find(|f| f.operator == operator && f.peers != peers) {
            return Err(SnapshotError::Workers { dir: self.dir.clone(), found: f.peers, peers });
        }
        let mut newest = None;
        for (to, path) in self.files(operator, worker, peers)?.into_iter().rev() {
            let (from, to, body) = self.read(&path, operator, worker, peers, to)?;
            if from > self.resume {
                continue;
            }
            let at = to.min(self.resume);
            newest = Some(at);
            if at.saturating_add(self.horizon / 2) < self.resume {
                break;
            }
            return Ok(Some((at, path, body)));
        }
        Err(SnapshotError::Missing {
            dir: self.dir.clone(),
            operator: operator.to_string(),
            worker,
            resume: self.resume,
            newest,
        })
    }

    /// Reads and checks one file: (from, to, body).
    fn read(
        &self,
        path: &Path,
        operator: &str,
        worker: usize,
        peers: usize,
        named_to: u64,
    ) -> Result<(u64, u64, Vec<u8>), SnapshotError> {
        let bytes =
            std::fs::read(path).map_err(|source| SnapshotError::Io { path: path.to_path_buf(), source })?;
        let corrupt = |what: &str| SnapshotError::Corrupt {
            path: path.to_path_buf(),
            what: what.to_string(),
            dir: self.dir.clone(),
        };
        let mut r = Reader { bytes: &bytes, at: 0 };
        if r.take(8) != Some(MAGIC.as_slice()) {
            return Err(corrupt("not a sensorflow state snapshot"));
        }
        let format = r.u32().ok_or_else(|| corrupt("truncated header"))?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                path: path.to_path_buf(),
                found: format,
                dir: self.dir.clone(),
            });
        }
        let name_len = r.u32().ok_or_else(|| corrupt("truncated header"))? as usize;
        let name = r.take(name_len).ok_or_else(|| corrupt("truncated header"))?;
        let identity_len = r.u32().ok_or_else(|| corrupt("truncated header"))? as usize;
        let identity = r.take(identity_len).ok_or_else(|| corrupt("truncated header"))?;
        let fields: Option<[u64; 6]> =
            (|| Some([r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u32()? as u64]))();
        let [w, p, from, to, len, crc] = fields.ok_or_else(|| corrupt("truncated header"))?;
        if name != operator.as_bytes()
            || w != worker as u64
            || p != peers as u64
            || to != named_to
            || from > to
        {
            return Err(corrupt("its header does not match its name"));
        }
        let body = r.take(len as usize).ok_or_else(|| corrupt("truncated"))?;
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        if u64::from(crc32fast::hash(body)) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        if identity != self.identity.as_bytes() {
            return Err(SnapshotError::Foreign {
                path: path.to_path_buf(),
                found: String::from_utf8_lossy(identity).into_owned(),
                expected: self.identity.clone(),
                dir: self.dir.clone(),
            });
        }
        Ok((from, to, body.to_vec()))
    }
}

/// What a snapshot file's name says.
struct FileName {
    operator: String,
    worker: usize,
    peers: usize,
    to: u64,
    path: PathBuf,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// An operator instance's side of the snapshots: where its next cut is.
#[derive(Debug)]
pub struct Cutter {
    snapshots: std::sync::Arc<Snapshots>,
    operator: &'static str,
    worker: usize,
    peers: usize,
    /// The first cut not yet written.
    next: u64,
}

impl Cutter {
    /// The cutter of one operator instance, and the state it resumes from (see
    /// [`Snapshots::restore`]).
    pub fn new<S: DeserializeOwned>(
        snapshots: std::sync::Arc<Snapshots>,
        operator: &'static str,
        worker: usize,
        peers: usize,
    ) -> Result<(Self, Option<Restored<S>>), SnapshotError> {
        let restored = snapshots.restore::<S>(operator, worker, peers)?;
        let next = match &restored {
            Some(r) => snapshots.next_cut(r.at),
            None => snapshots.every(),
        };
        Ok((Cutter { snapshots, operator, worker, peers, next }, restored))
    }

    /// The first cut not yet written (the operator holds a capability there).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Before input at `t` (or once the frontier reaches `t`): whether the state must be
    /// written first.
    pub fn due(&self, t: u64) -> bool {
        t >= self.next
    }

    /// Writes the state, which holds everything before `t` and nothing at or after it: valid for
    /// every cut from the next one up to `t`.
    pub fn write<S: Serialize>(&mut self, t: u64, state: &S) {
        if t == u64::MAX {
            // The end of input: nothing comes after it.
            self.next = u64::MAX;
            return;
        }
        if t < self.next {
            return;
        }
        let last = (t / self.snapshots.every).saturating_mul(self.snapshots.every);
        self.snapshots.write(self.operator, self.worker, self.peers, self.next, last, state);
        self.next = self.snapshots.next_cut(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sf-snap-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_resumed_run_gets_the_newest_state_at_or_below_its_resume_point() {
        let d = dir();
        let first = Arc::new(Snapshots::new(&d, 400, 0, "models A").expect("dir"));
        let (mut cut, restored) = Cutter::new::<Vec<u64>>(first.clone(), "op", 1, 2).expect("fresh");
        assert!(restored.is_none());
        assert_eq!(cut.next(), 100);
        cut.write(100, &vec![1u64]);
        cut.write(350, &vec![1u64, 2]); // valid for cuts 200 and 300
        cut.write(420, &vec![1u64, 2, 3]);
        assert_eq!(cut.next(), 500);
        let resumed = Arc::new(Snapshots::new(&d, 400, 330, "models A").expect("dir"));
        let (cut, restored) = Cutter::new::<Vec<u64>>(resumed, "op", 1, 2).expect("resume");
        let restored = restored.expect("a state");
        assert_eq!((restored.at, restored.state), (300, vec![1, 2]));
        assert_eq!(cut.next(), 400);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_snapshot_another_worker_count_other_models_or_none_near_the_resume_point_is_a_clear_error() {
        let d = dir();
        let s = Arc::new(Snapshots::new(&d, 400, 0, "models A").expect("dir"));
        let (mut cut, _) = Cutter::new::<u64>(s.clone(), "op", 0, 1).expect("fresh");
        cut.write(100, &7u64);
        let later = |resume| Arc::new(Snapshots::new(&d, 400, resume, "models A").expect("dir"));
        let err = Cutter::new::<u64>(later(100), "op", 0, 2).expect_err("two workers");
        assert!(err.to_string().contains("taken with 1 workers in all, this run has 2"), "{err}");
        let err = Cutter::new::<u64>(later(900), "op", 0, 1).expect_err("too old");
        let other = Arc::new(Snapshots::new(&d, 400, 120, "models B").expect("dir"));
        let err2 = Cutter::new::<u64>(other, "op", 0, 1).expect_err("other models");
        assert!(err2.to_string().contains("taken with \"models A\", this run has \"models B\""), "{err2}");
        assert!(matches!(err, SnapshotError::Missing { newest: Some(100), .. }), "{err}");
        assert!(Cutter::new::<u64>(later(120), "other", 0, 1).expect("no files of it").1.is_none());
        let file = s.file("op", 0, 1, 100);
        let mut bytes = std::fs::read(&file).expect("written");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        let err = Cutter::new::<u64>(later(120), "op", 0, 1).expect_err("corrupt");
        assert!(err.to_string().contains("checksum mismatch") && !err.is_retryable(), "{err}");
        std::fs::write(&file, b"hello").expect("write");
        let err = Cutter::new::<u64>(later(120), "op", 0, 1).expect_err("foreign");
        assert!(err.to_string().contains("not a sensorflow state snapshot"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn files_older_than_a_horizon_before_the_recorded_frontier_are_pruned() {
        let d = dir();
        let s = Arc::new(Snapshots::new(&d, 400, 0, "models A").expect("dir"));
        let (mut cut, _) = Cutter::new::<u64>(s.clone(), "op", 0, 1).expect("fresh");
        for t in (100u64..=2000).step_by(100) {
            s.recorded(t.saturating_sub(100));
            cut.write(t, &t);
        }
        let kept: Vec<u64> = s.files("op", 0, 1).expect("list").into_iter().map(|(to, _)| to).collect();
        assert_eq!(kept, vec![1500, 1600, 1700, 1800, 1900, 2000]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
