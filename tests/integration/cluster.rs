//! timely's cluster mode: several processes, one dataflow, the same alerts as one process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{sensorflow, simulate_file, tmp};
use crate::http_client::{metrics, total};

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

/// A port `p` with `p` and `p + 1` both free just now.
fn free_port_pair() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = first.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// Waits until the run serving HTTP at `addr` has read events: timely's processes have
/// connected to each other and the dataflow is running (fails the test after 60 s).
fn wait_reading(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(addr).is_ok()
            && total(&metrics(addr), "sensorflow_records_in_total") > 0.0
        {
            return;
        }
        assert!(Instant::now() < deadline, "the process at {addr} never started reading");
        std::thread::sleep(Duration::from_millis(50));
    }
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

    let counts = dir.path().join("counts.json");
    let cluster = sensorflow()
        .args(["cluster", "--processes", "2", "-w", "2", "--counts-json", counts.to_str().unwrap(), "--"])
        .args(run)
        .output()
        .unwrap();
    assert!(cluster.status.success(), "{}", String::from_utf8_lossy(&cluster.stderr));
    assert_eq!(sorted_alert_lines(&cluster.stdout), expected, "2 processes x 2 workers");
    // timely's connection messages went to stderr, not into the alert stream.
    assert!(String::from_utf8_lossy(&cluster.stdout).lines().all(|l| l.starts_with('{')));
    // One summary for the cluster, whose counts balance (no process's do alone: events read in
    // one are processed in the other), and its JSON.
    let stderr = String::from_utf8_lossy(&cluster.stderr);
    assert!(stderr.contains("sensorflow cluster summary") && stderr.contains("counts balance"), "{stderr}");
    assert!(!stderr.contains("do not balance"), "{stderr}");
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&counts).unwrap()).unwrap();
    let lines = std::fs::read_to_string(&data).unwrap().lines().count() as u64;
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!((n("processes"), n("workers"), n("records_in")), (2, 2, lines), "{c}");
    assert_eq!(n("processed") + n("late") + n("dead_lettered") + n("duplicates"), lines, "{c}");
    let fired: u64 = c["alerts_by_rule"].as_object().unwrap().values().map(|v| v[0].as_u64().unwrap()).sum();
    let fired_lines = expected.iter().filter(|l| l.contains(r#""kind":"fired""#)).count() as u64;
    assert_eq!(fired, fired_lines, "{c}");
    // Each process writes its own counts: the command may not ask for them too.
    let refused = sensorflow()
        .args(["cluster", "--processes", "2", "--"])
        .args(run)
        .args(["--counts-json", "x.json"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("give --counts-json to cluster itself"));
}

/// r17: the test allowed 10 s and checked only a non-zero exit.
#[test]
fn r17_killing_one_process_makes_the_other_exit_with_code_3_within_two_seconds() {
    let dir = tmp();
    let hosts = dir.path().join("hosts");
    let ports = free_ports(2);
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hosts, text).unwrap();
    // Process i serves HTTP on the given port + i: two free ports in a row.
    let base = free_port_pair();
    let http = |i: usize| std::net::SocketAddr::from(([127, 0, 0, 1], base + i as u16));
    let start = |i: usize| {
        sensorflow()
            .args(["run", "-q", "--alerts", "none", "--realtime", "1", "--duration", "120s"])
            .args(["--processes", "2", "--process", &i.to_string(), "--hostfile"])
            .arg(&hosts)
            .args(["--http", &http(0).to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut p0 = start(0);
    let mut p1 = start(1);
    wait_reading(http(0));
    wait_reading(http(1));
    assert!(p0.try_wait().unwrap().is_none() && p1.try_wait().unwrap().is_none(), "both should be running");
    p1.kill().unwrap();
    p1.wait().unwrap();
    let killed = Instant::now();
    let status = exit_within(&mut p0, Duration::from_secs(10), "the surviving process");
    let took = killed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut p0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(took < Duration::from_secs(2), "the survivor took {took:?} to stop");
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
    // The reader thread ends at the launcher's end of stderr: read until then.
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("failed")), "{rest:?}");
}
