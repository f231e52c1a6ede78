//! Durable progress, in one owner: offsets are committed only once the alert, dead-letter
//! and late outputs holding their consequences are flushed, with the output frontier recorded
//! beside them (Kafka commit metadata and `<alerts>.checkpoint`); a restarted run resumes
//! from that record (see the README's "Recovery").

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sensorflow_operators::{lock, Control, Snapshots};
use timely::dataflow::ProbeHandle;

use super::Shared;
use crate::config::{AlertOutput, RunConfig};
use crate::connectors::{self, SourceConfig};
use crate::Error;

/// Where a restarted run picks up: alerts below `suppress_below` (dataflow time) were written
/// by an earlier run, and `open` are the rule episodes the alert file shows open then.
#[derive(Debug, Default)]
pub(super) struct Resume {
    pub suppress_below: u64,
    pub open: Vec<Control>,
}

/// The resume point of a Kafka-fed run (nothing to resume for other sources).
pub(super) fn resume(config: &RunConfig) -> Result<Resume, Error> {
    let SourceConfig::Kafka(k) = &config.source else { return Ok(Resume::default()) };
    let file = config.checkpoint_path().map(|p| read_checkpoint(&p)).transpose()?.flatten();
    let suppress_below = connectors::kafka::resume_frontier(k)?.max(file.unwrap_or(0));
    let mut open = Vec::new();
    if suppress_below > 0 {
        if let AlertOutput::File(path) = &config.process_alerts() {
            open = crate::sinks::open_episodes(path, suppress_below)?
                .into_iter()
                .map(|(device, rule, since)| Control::OpenEpisode {
                    device,
                    rule,
                    since,
                    resume_at: suppress_below,
                })
                .collect();
        }
        tracing::info!(
            "resuming consumer group: alerts before {} were written by an earlier run",
            crate::timefmt::format_datetime(suppress_below)
        );
    }
    Ok(Resume { suppress_below, open })
}

/// The operator state snapshots of a Kafka-fed run with a checkpoint file (in `<checkpoint>.state/`,
/// a cut every quarter of the recovery horizon; see [`sensorflow_operators::runtime::snapshot`]),
/// resuming from `resume`. On a resume, every worker's snapshot of every stateful `operators`
/// is checked here, before any worker starts: a bad one stops the run before it reads.
pub(super) fn snapshots(
    config: &RunConfig,
    resume: u64,
    identity: &str,
    operators: &[&str],
) -> Result<Option<Arc<Snapshots>>, Error> {
    let SourceConfig::Kafka(k) = &config.source else { return Ok(None) };
    let Some(checkpoint) = config.checkpoint_path() else { return Ok(None) };
    let mut dir = checkpoint.into_os_string();
    dir.push(".state");
    let snapshots = Snapshots::new(PathBuf::from(dir), k.horizon_ms, resume, identity)?;
    let first = config.process * config.workers;
    let peers = config.processes.max(1) * config.workers;
    for op in operators {
        snapshots.check(op, first..first + config.workers, peers)?;
    }
    Ok(Some(Arc::new(snapshots)))
}

/// Commits source offsets once the outputs holding their consequences are flushed. One
/// worker per process commits every partition of the process at the same frontier, recorded
/// beside the offsets so a restart knows which alerts were already written.
pub(super) struct Durable {
    active: bool,
    last: Instant,
    frontier: u64,
}

impl Durable {
    /// How often outputs are flushed and offsets committed.
    const EVERY: Duration = Duration::from_millis(200);

    pub(super) fn new(active: bool) -> Self {
        Durable { active, last: Instant::now(), frontier: 0 }
    }

    fn committers(shared: &Shared) -> Vec<Arc<dyn connectors::Committer>> {
        lock(&shared.committers).clone()
    }

    /// Every [`Self::EVERY`]: if the output frontier moved, flush the sinks, then commit.
    pub(super) fn maybe_commit(&mut self, shared: &Shared, probe: &ProbeHandle<u64>) {
        if !self.active || self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        // After a stop request, windows close early; offsets stay where the last full
        // frontier left them so a restart re-reads what those windows held.
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let committers = Self::committers(shared);
        if committers.is_empty() {
            return;
        }
        let frontier = probe.with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));
        if frontier > self.frontier && frontier != u64::MAX && flush_outputs(shared) {
            // Every operator wrote its state at the cuts below `frontier`, unless one failed.
            if let Some(e) = shared.snapshots.as_ref().and_then(|s| s.take_failure()) {
                shared.fail(e.into());
                return;
            }
            if !write_checkpoint(shared, frontier) {
                return;
            }
            if let Some(s) = &shared.snapshots {
                s.recorded(frontier.max(shared.suppress_below));
            }
            self.frontier = frontier;
            for c in &committers {
                c.commit(frontier, frontier.max(shared.suppress_below), false);
            }
        }
    }

    /// At the end of input: everything is written, so commit every offset read (unless
    /// stopped early). The recorded frontier stays the last full one: data appended later
    /// must still produce its alerts.
    pub(super) fn finish(&mut self, shared: &Shared) {
        if !self.active || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let committers = Self::committers(shared);
        if !committers.is_empty() && flush_outputs(shared) && write_checkpoint(shared, self.frontier) {
            for c in &committers {
                c.commit(u64::MAX, self.frontier.max(shared.suppress_below), true);
            }
        }
    }
}

/// The frontier a checkpoint file records (`None` if there is no file yet).
fn read_checkpoint(path: &Path) -> Result<Option<u64>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("checkpoint {}: {e}", path.display())))?;
            let f = v["output_frontier"].as_u64().ok_or_else(|| {
                Error::Config(format!("checkpoint {}: no output_frontier number", path.display()))
            })?;
            Ok(Some(f))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Records `frontier` in the checkpoint file (write, sync, rename: never half-written).
fn write_checkpoint(shared: &Shared, frontier: u64) -> bool {
    let Some(path) = shared.config.checkpoint_path() else { return true };
    let frontier = frontier.max(shared.suppress_below);
    let tmp = path.with_extension("checkpoint.tmp");
    let text = serde_json::json!({ "output_frontier": frontier }).to_string();
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, &path)) {
        Ok(()) => true,
        Err(e) => {
            shared.fail(Error::io(&path, e));
            false
        }
    }
}

/// Flushes alerts, dead letters and late events; false (and the run fails) if one cannot be.
pub(super) fn flush_outputs(shared: &Shared) -> bool {
    match shared.flush() {
        Ok(()) => true,
        Err(e) => {
            shared.fail(e);
            false
        }
    }
}
