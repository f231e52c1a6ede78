//! timely's cluster mode: several processes, one dataflow, the same alerts as one process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{sensorflow, simulate_file, tmp};

fn sorted_alert_lines(out: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> =
        String::from_utf8_lossy(out).lines().filter(|l| l.starts_with('{')).map(String::from).collect();
    lines.sort();
    lines
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Waits for `child` to exit, killing it and failing the test after `limit`.
fn exit_within(child: &mut std::process::Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn same_alerts_at_1x1_1x4_and_2x2() {
    let dir = tmp();
    let data = dir.path().join("sim.jsonl");
    simulate_file(&data, "100", "30m");
    let input = data.to_str().unwrap();
    let run = ["run", "-q", "--source", "jsonl", "--input", input, "--window", "10s"];

    let one = sensorflow().args(run).args(["-w", "1"]).output().unwrap();
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let expected = sorted_alert_lines(&one.stdout);
    assert!(expected.len() > 20, "the run should alert, got {}", expected.len());

    let four = sensorflow().args(run).args(["-w", "4"]).output().unwrap();
    assert!(four.status.success());
    assert_eq!(sorted_alert_lines(&four.stdout), expected, "1 process x 4 workers");

    let cluster =
        sensorflow().args(["cluster", "--processes", "2", "-w", "2", "--"]).args(run).output().unwrap();
    assert!(cluster.status.success(), "{}", String::from_utf8_lossy(&cluster.stderr));
    assert_eq!(sorted_alert_lines(&cluster.stdout), expected, "2 processes x 2 workers");
    // timely's connection messages went to stderr, not into the alert stream.
    assert!(String::from_utf8_lossy(&cluster.stdout).lines().all(|l| l.starts_with('{')));
}

#[test]
fn killing_one_process_stops_the_other_within_seconds() {
    let dir = tmp();
    let hosts = dir.path().join("hosts");
    let text: String = free_ports(2).iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hosts, text).unwrap();
    let start = |i: usize| {
        sensorflow()
            .args(["run", "-q", "--alerts", "none", "--realtime", "1", "--duration", "120s"])
            .args(["--processes", "2", "--process", &i.to_string(), "--hostfile"])
            .arg(&hosts)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut p0 = start(0);
    let mut p1 = start(1);
    std::thread::sleep(Duration::from_secs(3));
    assert!(p0.try_wait().unwrap().is_none() && p1.try_wait().unwrap().is_none(), "both should be running");
    p1.kill().unwrap();
    p1.wait().unwrap();
    let status = exit_within(&mut p0, Duration::from_secs(10), "the surviving process");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut p0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("lost the connection to a peer process"), "{err}");
}

#[test]
fn the_launcher_stops_when_one_of_its_processes_is_killed() {
    use std::io::BufRead;
    let mut launcher = sensorflow()
        .args(["cluster", "--processes", "2", "--"])
        .args(["run", "-q", "--alerts", "none", "--realtime", "1", "--duration", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = launcher.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut pid = None;
    let mut said = Vec::new();
    while pid.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("the launcher names its processes");
        pid = line.strip_prefix("cluster: process 1 is pid ").map(|p| p.trim().to_string());
        said.push(line);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(launcher.try_wait().unwrap().is_none(), "the cluster should be running: {said:?}");
    let killed = Command::new("kill").args(["-9", pid.as_deref().unwrap()]).status().unwrap();
    assert!(killed.success());
    let status = exit_within(&mut launcher, Duration::from_secs(10), "the launcher");
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(200));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("failed")), "{rest:?}");
}
