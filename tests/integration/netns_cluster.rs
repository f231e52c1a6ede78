//! A 3-process cluster on three hosts of its own: network namespaces joined by veth pairs to a
//! bridge (in a fourth namespace, which also holds a Kafka broker), each host with its own
//! address; nothing outside these namespaces is contacted. Each host runs its process under a
//! supervisor loop (the documented way to run a cluster: restart the process when it exits
//! with a failure), reading a topic that a paced producer fills while the cluster runs. A
//! killed process and a cut link must each stop the others with exit code 3 and a clear
//! message, and the restarted job must write exactly the alerts of an uninterrupted run.
//! Needs root (network namespaces), `ip` (iproute2) and the tansu binary of scripts/brokers.sh.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::tmp;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) must be installed");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// The namespaces, veth pairs and bridge; removed (with every process in them) on drop.
struct Hosts {
    prefix: String,
    subnet: u32,
    broker: Option<Child>,
}

impl Hosts {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn host_addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    fn bridge_addr(&self) -> String {
        format!("10.77.{}.254", self.subnet)
    }

    fn build() -> Hosts {
        let pid = std::process::id();
        let prefix = format!("sf{}", pid % 100_000);
        let hosts = Hosts { prefix, subnet: pid % 250, broker: None };
        let br = hosts.ns("br");
        ip(&["netns", "add", &br]);
        for i in 0..3 {
            ip(&["netns", "add", &hosts.ns(&format!("h{i}"))]);
        }
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        ip(&["-n", &br, "addr", "add", &format!("{}/24", hosts.bridge_addr()), "dev", "br0"]);
        for i in 0..3 {
            let h = hosts.ns(&format!("h{i}"));
            let (a, b) = (format!("{}a{i}", hosts.prefix), format!("{}b{i}", hosts.prefix));
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &a, "netns", &h]);
            ip(&["link", "set", &b, "netns", &br]);
            ip(&["-n", &h, "link", "set", &a, "name", "eth0"]);
            ip(&["-n", &h, "addr", "add", &format!("{}/24", hosts.host_addr(i)), "dev", "eth0"]);
            ip(&["-n", &h, "link", "set", "eth0", "up"]);
            ip(&["-n", &h, "link", "set", "lo", "up"]);
            ip(&["-n", &br, "link", "set", &b, "master", "br0"]);
            ip(&["-n", &br, "link", "set", &b, "up"]);
            // A connection whose peer vanished fails after ~6 s of unanswered retransmissions
            // instead of Linux's default ~15 minutes (the deployment advice in the README).
            let out = Command::new("ip")
                .args(["netns", "exec", &h, "sysctl", "-q", "-w", "net.ipv4.tcp_retries2=4"])
                .output()
                .unwrap();
            assert!(out.status.success(), "sysctl: {}", String::from_utf8_lossy(&out.stderr));
        }
        hosts
    }

    /// Cuts (or restores) host `i`'s link to the bridge.
    fn link(&self, i: usize, up: bool) {
        let b = format!("{}b{i}", self.prefix);
        ip(&["-n", &self.ns("br"), "link", "set", &b, if up { "up" } else { "down" }]);
    }

    /// A command run inside namespace `name`.
    fn exec(&self, name: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(name)]);
        c
    }

    /// Process ids of the `sensorflow` processes in host `i`'s namespace.
    fn sensorflow_pids(&self, i: usize) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.ns(&format!("h{i}"))]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sensorflow")
            })
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(b) = &mut self.broker {
            let _ = b.kill();
            let _ = b.wait();
        }
        for name in ["h0", "h1", "h2", "br"] {
            let ns = self.ns(name);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", p]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn alert_ids(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect()
}

/// One process's supervisor log: `exit <code> <unix ns>` per run that ended.
fn exits(log: &Path) -> Vec<(i32, u128)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("exit"))
                .then(|| (w.next().unwrap().parse().unwrap(), w.next().unwrap().parse().unwrap()))
        })
        .collect()
}

/// Waits until `cond` holds, failing after `limit` with `what`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// r17: the cluster was tested only on loopback in one namespace.
#[test]
fn r17_a_three_host_cluster_recovers_from_a_killed_process_and_a_cut_link_to_the_uninterrupted_alerts() {
    let bin = env!("CARGO_BIN_EXE_sensorflow");
    let tansu = std::env::var("SENSORFLOW_TANSU").expect("SENSORFLOW_TANSU (scripts/brokers.sh) names tansu");
    let dir = tmp();
    let mut hosts = Hosts::build();
    let kafka = format!("{}:9092", hosts.bridge_addr());
    let url = format!("tcp://{kafka}");
    hosts.broker = Some(
        hosts
            .exec("br")
            .arg(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let topic = "cluster-events";
    // The producer: 10 minutes of event time for 60 devices in 20 s (30× real time), dense
    // with anomalies so the rules alert often; from host 0's namespace.
    let produce = |extra: &[&str]| {
        let mut c = hosts.exec("h0");
        c.arg(bin)
            .args(["simulate", "--to", "kafka", "--broker", &kafka, "--topic", topic, "--partitions", "6"])
            .args(["--devices", "60", "--span", "10m", "--anomaly-rate", "30", "--seed", "5"])
            .arg("--labels")
            .arg(dir.path().join("labels.json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    wait_until(Duration::from_secs(20), "tansu in the bridge namespace", || {
        hosts
            .exec("h0")
            .args(["python3", "-c"])
            .arg(format!(
                "import socket; socket.create_connection(('{}', 9092), timeout=1)",
                hosts.bridge_addr()
            ))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    let mut producer = produce(&["--realtime", "30"]).spawn().unwrap();

    // Each host: its process under a supervisor loop that restarts it after any failure.
    let hostfile = dir.path().join("hosts");
    let text: String = (0..3).map(|i| format!("{}:7000\n", hosts.host_addr(i))).collect();
    std::fs::write(&hostfile, text).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let run_args = |group: &str| -> Vec<String> {
        [
            "run",
            "--source",
            "kafka",
            "--broker",
            &kafka,
            "--topic",
            topic,
            "--group",
            group,
            "--until-idle",
            "8s",
            // Keep wall-clock idle detection out of what is compared (see the kill test).
            "--idle-timeout",
            "60s",
            "--recovery-horizon",
            "15m",
            // The default models, their state snapshotted and restored; the device model
            // live after 50 rows (of 10 s).
            "--device-warmup",
            "50",
            "-w",
            "1",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let logs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("p{i}.log"))).collect();
    let mut loops: Vec<Child> = (0..3)
        .map(|i| {
            let mut args = run_args("cluster");
            args.extend(["--processes", "3", "--process", &i.to_string(), "--hostfile"].map(String::from));
            args.push(hostfile.display().to_string());
            args.push("--alerts".into());
            args.push(alerts.display().to_string());
            let cmd: Vec<String> = std::iter::once(bin.to_string()).chain(args).collect();
            let script = format!(
                "while :; do \"$@\" 2>>{err}; rc=$?; echo \"exit $rc $(date +%s%N)\" >>{log}; \
                 [ $rc -eq 0 ] && exit 0; sleep 0.5; done",
                err = logs[i].with_extension("err").display(),
                log = logs[i].display()
            );
            hosts.exec(&format!("h{i}")).args(["sh", "-c", &script, "sh"]).args(cmd).spawn().unwrap()
        })
        .collect();

    // Kill host 1's process once the job is running: the other two stop with code 3.
    wait_until(Duration::from_secs(60), "the cluster to start", || {
        (0..3).all(|i| !hosts.sensorflow_pids(i).is_empty())
    });
    std::thread::sleep(Duration::from_secs(4)); // Let the job connect and read for a while.
    let pids = hosts.sensorflow_pids(1);
    let killed_at = now_ns();
    for p in &pids {
        assert!(Command::new("kill").args(["-9", &p.to_string()]).status().unwrap().success());
    }
    wait_until(Duration::from_secs(20), "the peers of the killed process to exit", || {
        !exits(&logs[0]).is_empty() && !exits(&logs[2]).is_empty()
    });
    for i in [0, 2] {
        let (code, at) = exits(&logs[i])[0];
        let err = std::fs::read_to_string(logs[i].with_extension("err")).unwrap_or_default();
        assert_eq!(code, 3, "process {i} after its peer was killed: {err}");
        assert!(err.contains("lost the connection to a peer process"), "{err}");
        let took = Duration::from_nanos((at.saturating_sub(killed_at)) as u64);
        eprintln!("netns cluster: process {i} stopped {took:?} after process 1 was killed");
        assert!(took < Duration::from_secs(3), "process {i} took {took:?} to stop");
    }

    // Cut host 2's link once the job has re-formed: every process stops with code 3; the link
    // comes back and the job re-forms again.
    wait_until(Duration::from_secs(60), "the job to re-form", || {
        (0..3).all(|i| !hosts.sensorflow_pids(i).is_empty())
    });
    std::thread::sleep(Duration::from_secs(4));
    let before: Vec<usize> = logs.iter().map(|l| exits(l).len()).collect();
    let cut_at = now_ns();
    hosts.link(2, false);
    wait_until(Duration::from_secs(40), "the processes on both sides of the cut to exit", || {
        (0..3).all(|i| exits(&logs[i]).len() > before[i])
    });
    hosts.link(2, true);
    for (i, log) in logs.iter().enumerate() {
        let (code, at) = exits(log)[before[i]];
        assert_eq!(code, 3, "process {i} after the cut");
        let took = Duration::from_nanos((at.saturating_sub(cut_at)) as u64);
        eprintln!("netns cluster: process {i} stopped {took:?} after the link was cut");
        assert!(took < Duration::from_secs(20), "process {i} took {took:?} to stop after the cut");
    }

    assert!(producer.wait().unwrap().success(), "the producer failed");
    let deadline = Instant::now() + Duration::from_secs(180);
    for (i, l) in loops.iter_mut().enumerate() {
        loop {
            if let Some(s) = l.try_wait().unwrap() {
                assert!(s.success(), "host {i}'s supervisor ended with {s}");
                break;
            }
            assert!(Instant::now() < deadline, "host {i}'s job did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The uninterrupted run: one process, the same topic, a group of its own.
    let reference = dir.path().join("reference.jsonl");
    let status = hosts
        .exec("h0")
        .arg(bin)
        .args(run_args("reference"))
        .arg("--alerts")
        .arg(&reference)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let expected: BTreeSet<String> = alert_ids(&reference).into_iter().collect();
    assert!(
        expected.len() >= 50,
        "the uninterrupted run should hold at least 50 alerts, got {}",
        expected.len()
    );
    let text = std::fs::read_to_string(&reference).unwrap();
    let model = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| {
            v["rule"] == "device-model" || v["condition"].as_str().is_some_and(|c| c.starts_with("score >"))
        })
        .count();
    eprintln!("netns cluster: the uninterrupted run wrote {} alerts, {model} of the models", expected.len());
    assert!(model >= 20, "the uninterrupted run should hold model alerts, got {model}");
    let got: Vec<String> =
        (0..3).flat_map(|i| alert_ids(&dir.path().join(format!("alerts.p{i}.jsonl")))).collect();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "an alert id written twice");
    let lost: Vec<_> = expected.difference(&unique).take(5).collect();
    let extra: Vec<_> = unique.difference(&expected).take(5).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "of {} alerts: lost {lost:?}…, extra {extra:?}…",
        expected.len()
    );
}
