//! `sensorflow cluster`: P local processes on loopback joined into one timely cluster, each
//! running the same `run ...` or `replay ...` command, their output forwarded line by line; if
//! one process fails, the others are stopped.

use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::engine::summary::Counts;
use crate::Error;

/// Everything `cluster` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Processes to start (at least 1; the command line checks this, and that `command` is
    /// `run ...` or `replay ...`).
    pub processes: usize,
    /// Worker threads per process.
    pub workers: usize,
    /// The sensorflow executable each process runs.
    pub exe: PathBuf,
    /// The arguments each process runs (`run ...` or `replay ...`); the cluster flags
    /// (`--processes`, `--process`, `--workers`, `--hostfile`, `--counts-json`) are appended.
    pub command: Vec<String>,
    /// Where to write the processes' counts summed (JSON), besides printing them.
    pub counts_json: Option<PathBuf>,
}

/// How a cluster ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterExit {
    /// Every process exited successfully.
    Success,
    /// Process `process` (0-based) failed with `status`, and the others were stopped.
    Failed {
        /// The index of the first process seen failing.
        process: usize,
        /// Its exit status.
        status: ExitStatus,
    },
}

/// Starts the processes, forwards their standard output to ours (timely's connection messages
/// to standard error), and waits for them all; the first failure stops the others. The pid of
/// each process is announced on standard error (`cluster: process I is pid N`).
pub fn run_cluster(config: &ClusterConfig) -> Result<ClusterExit, Error> {
    let ports: Vec<u16> = (0..config.processes)
        .map(|_| TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::Runtime(format!("finding free ports: {e}")))?;
    let hostfile = std::env::temp_dir().join(format!("sensorflow-cluster-{}.hosts", std::process::id()));
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hostfile, text).map_err(|e| Error::io(&hostfile, e))?;
    let counts_dir = std::env::temp_dir().join(format!("sensorflow-cluster-{}-counts", std::process::id()));
    std::fs::create_dir_all(&counts_dir).map_err(|e| Error::io(&counts_dir, e))?;
    let exit = supervise(config, &hostfile, &counts_dir);
    let _ = std::fs::remove_file(&hostfile);
    if let Ok(ClusterExit::Success) = exit {
        let summed = sum_counts(&counts_dir, config.processes);
        let _ = std::fs::remove_dir_all(&counts_dir);
        let counts = summed?;
        eprint!("{counts}");
        if let Some(path) = &config.counts_json {
            let text = serde_json::to_string_pretty(&counts).map_err(|e| Error::Runtime(e.to_string()))?;
            std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
        }
    } else {
        let _ = std::fs::remove_dir_all(&counts_dir);
    }
    exit
}

/// The file process `i` writes its counts to.
fn counts_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("counts-{i}.json"))
}

/// The counts every process wrote, summed: one summary for the cluster, which balances where
/// no process's does alone (events read in one process are processed in another).
fn sum_counts(dir: &Path, processes: usize) -> Result<Counts, Error> {
    let parts = (0..processes)
        .map(|i| {
            let path = counts_file(dir, i);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str::<Counts>(&text)
                .map_err(|e| Error::Runtime(format!("process {i}'s counts ({}): {e}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Counts::sum(&parts))
}

/// Starts every process with `hostfile` and waits as [`run_cluster`] says. An error starting
/// or polling a process returns at once, as the launcher always has.
fn supervise(config: &ClusterConfig, hostfile: &Path, counts_dir: &Path) -> Result<ClusterExit, Error> {
    let mut children = Vec::new();
    let mut forwarders = Vec::new();
    for i in 0..config.processes {
        let started = Command::new(&config.exe)
            .args(&config.command)
            .args(["--processes", &config.processes.to_string(), "--process", &i.to_string()])
            .args(["--workers", &config.workers.to_string(), "--hostfile"])
            .arg(hostfile)
            .arg("--counts-json")
            .arg(counts_file(counts_dir, i))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = started.map_err(|e| Error::Runtime(format!("starting process {i}: {e}")))?;
        eprintln!("cluster: process {i} is pid {}", child.id());
        if let Some(out) = child.stdout.take() {
            forwarders.push(std::thread::spawn(move || forward_lines(out)));
        }
        children.push(Some(child));
    }
    let exit = wait_for_first_failure(&mut children)?;
    stop_all(&mut children);
    for f in forwarders {
        let _ = f.join();
    }
    Ok(exit)
}

/// Polls the processes until all have exited or one has failed.
fn wait_for_first_failure(children: &mut [Option<Child>]) -> Result<ClusterExit, Error> {
    while children.iter().any(Option::is_some) {
        for (i, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            let status =
                child.try_wait().map_err(|e| Error::Runtime(format!("waiting for a process: {e}")))?;
            if let Some(status) = status {
                *slot = None;
                if !status.success() {
                    return Ok(ClusterExit::Failed { process: i, status });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(ClusterExit::Success)
}

/// Kills and reaps every process still running.
fn stop_all(children: &mut [Option<Child>]) {
    for child in children.iter_mut().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Copies a child's standard output to ours line by line (whole lines, so processes do not
/// interleave mid-line), moving timely's connection messages, which it prints on standard
/// output, to standard error.
fn forward_lines(out: ChildStdout) {
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        if is_connection_message(&line) {
            eprintln!("{line}");
        } else if writeln!(std::io::stdout().lock(), "{line}").is_err() {
            return;
        }
    }
}

/// Whether `line` is one of timely's connection messages.
fn is_connection_message(line: &str) -> bool {
    line.starts_with("awaiting connections (at ") || line.contains("\terror connecting to worker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelys_connection_messages_are_recognised() {
        assert!(is_connection_message("awaiting connections (at 127.0.0.1:2101)"));
        assert!(is_connection_message("worker 0\terror connecting to worker 1"));
        assert!(!is_connection_message("{\"rule\":\"hot\"}"));
    }
}
