//! Tests against real brokers: Mosquitto and tansu (a Kafka-protocol broker), started by
//! `scripts/test.sh` (scripts/brokers.sh), which exports `SENSORFLOW_MQTT` and
//! `SENSORFLOW_KAFKA`. These tests fail, not skip, when the brokers are missing.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event as MqttEvent, Packet, QoS};
use sensorflow::config::AlertOutput;
use sensorflow::connectors::kafka::{ensure_topic, existing_keys, KafkaProducer};
use sensorflow::connectors::mqtt::options;
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::{KafkaSourceConfig, MqttSourceConfig, SourceConfig};
use sensorflow::tools::bridge::{run_bridge, BridgeConfig};
use sensorflow::tools::simulate::{simulate_to, Output};

use crate::common::{config, run, tmp};
use crate::http_client::{metrics, total};

fn broker(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test.sh, which starts Mosquitto and tansu")
    })
}

pub(crate) fn kafka() -> String {
    broker("SENSORFLOW_KAFKA")
}

fn mqtt() -> String {
    broker("SENSORFLOW_MQTT")
}

/// A name no other test (or earlier run against the same broker) uses.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

fn sim(devices: u64, minutes: u64, seed: u64) -> SimConfig {
    SimConfig {
        devices,
        span_ms: minutes * 60 * 1000,
        anomaly_rate_per_hour: 2.0,
        seed,
        ..SimConfig::default()
    }
}

/// A Kafka source that ends the run once the topic has been quiet for 6 s (generous: a loaded
/// CI machine can stall a fetch for seconds, and ending early would close windows early).
pub(crate) fn kafka_source(topic: &str) -> KafkaSourceConfig {
    let mut k = KafkaSourceConfig::new(&kafka(), topic);
    k.group = unique("group");
    k.until_idle_ms = Some(6000);
    k
}

/// Starts a bridge from `<prefix>/<device>/<metric>` on `mqtt` to `topic`, ending 8 s after the
/// last message, and returns once the broker has confirmed its subscription.
fn start_bridge(
    mqtt: &str,
    prefix: &str,
    topic: &str,
) -> std::thread::JoinHandle<Result<sensorflow::tools::bridge::BridgeStats, sensorflow::Error>> {
    let mut b = BridgeConfig::new(mqtt, &format!("{prefix}/#"), &kafka(), topic);
    b.template = Some(format!("{prefix}/{{device}}/{{metric}}"));
    b.client_id = unique("bridge");
    b.until_idle = Some(Duration::from_secs(8));
    let subscribed = b.subscribed.clone();
    let bridge = std::thread::spawn(move || run_bridge(&b, Arc::new(AtomicBool::new(false))));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !subscribed.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the bridge did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }
    bridge
}

/// An MQTT client `id` (with a persistent session if `persistent`, a request queue of `cap`)
/// subscribed to `filter`, once the broker has acknowledged the subscription.
fn subscribed(id: &str, persistent: bool, filter: String, cap: usize) -> (Client, Connection) {
    subscribed_at(&mqtt(), id, persistent, filter, cap)
}

/// [`subscribed`] on the broker at `broker`.
fn subscribed_at(
    broker: &str,
    id: &str,
    persistent: bool,
    filter: String,
    cap: usize,
) -> (Client, Connection) {
    let (client, mut conn) = Client::new(options(broker, id, persistent).unwrap(), cap);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    for ev in conn.iter() {
        if let Ok(MqttEvent::Incoming(Packet::SubAck(_))) = ev {
            break;
        }
        ev.unwrap();
    }
    (client, conn)
}

fn ids(alerts: &[sensorflow_operators::Alert]) -> BTreeSet<String> {
    alerts.iter().map(|a| a.id()).collect()
}

fn alert_ids_in_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad alert line {l:?}: {e}"));
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn simulator_to_mqtt_through_the_bridge_to_kafka_and_two_workers_matches_the_direct_run() {
    let sim = sim(40, 20, 11);
    let dir = tmp();
    // What the rules and the model say when the simulator feeds the engine directly.
    let (direct, direct_out) = run(&config(SourceConfig::Simulator(sim.clone()), 1));
    let caught = direct.ground_truth.as_ref().map_or(0, |g| g.caught);
    assert!(caught > 5, "the direct run should catch injected anomalies, caught {caught}");

    let prefix = unique("sensors");
    let topic = unique("e2e");
    let bridge = start_bridge(&mqtt(), &prefix, &topic);

    let out = Output::Mqtt { broker: mqtt(), template: format!("{prefix}/{{device}}/{{metric}}") };
    let written = simulate_to(&sim, &out, &dir.path().join("labels.json"), None, None).unwrap();
    let stats = bridge.join().unwrap().unwrap();
    assert_eq!(stats.dead_lettered, 0);
    assert!(stats.forwarded >= written.events, "bridge {stats} of {} published", written.events);

    let (s, out) = run(&config(SourceConfig::Kafka(kafka_source(&topic)), 2));
    assert_eq!(s.records_in, stats.forwarded, "every forwarded message is read");
    assert_eq!(s.records_in, s.processed + s.dead_lettered + s.late + s.duplicates, "{s}");
    assert_eq!(s.processed, written.events, "re-deliveries are dropped as duplicates");
    assert_eq!(ids(&out.sorted_alerts()), ids(&direct_out.sorted_alerts()));
}

/// Model alerts (the series model's and the device model's) in an alert file's lines.
fn is_model_alert(line: &serde_json::Value) -> bool {
    line["rule"] == "device-model" || line["condition"].as_str().is_some_and(|c| c.starts_with("score >"))
}

/// Episodes of a model fired and not yet cleared in an alert file.
fn open_model_episodes(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut open = BTreeSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if !is_model_alert(&v) {
            continue;
        }
        let id = v["id"].as_str().unwrap_or_default();
        if let Some(episode) = id.strip_suffix("/fired") {
            open.insert(episode.to_string());
        } else if let Some(episode) = id.strip_suffix("/cleared") {
            open.remove(episode);
        }
    }
    open.len()
}

/// The output frontier a run's checkpoint file records (0 before the first).
fn checkpoint_frontier(alerts: &Path) -> u64 {
    let mut name = alerts.as_os_str().to_owned();
    name.push(".checkpoint");
    std::fs::read_to_string(PathBuf::from(name))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["output_frontier"].as_u64())
        .unwrap_or(0)
}

#[test]
fn r17_kafka_run_with_the_default_models_killed_twenty_times_writes_exactly_the_uninterrupted_alerts() {
    let topic = unique("crash");
    let brokers = kafka();
    ensure_topic(&brokers, &topic, 4).unwrap();
    let dir = tmp();
    let out = Output::Kafka { brokers: brokers.clone(), topic: topic.clone(), partitions: 4 };
    let sim = sim(200, 60, 5);
    let written = simulate_to(&sim, &out, &dir.path().join("labels.json"), None, None).unwrap();
    assert!(written.events > 1_000_000);
    // The device model learns for the first 30 minutes of event time.
    let warm_until = sim.start_ms + 30 * 60 * 1000;

    let bin = env!("CARGO_BIN_EXE_sensorflow");
    let run_cmd = |group: &str, alerts: &Path| {
        let mut c = Command::new(bin);
        c.args(["run", "--source", "kafka", "--broker", &brokers, "--topic", &topic, "--group", group])
            .args([
                "--until-idle",
                "8s",
                // A partition whose fetches stall longer than the idle timeout (a loaded machine)
                // leaves the watermark to the others and its events late, in one run and not in
                // another: keep the wall clock out of what this test compares.
                "--idle-timeout",
                "60s",
                "--recovery-horizon",
                "15m",
                "--device-warmup",
                "30m",
                "-w",
                "2",
                "-q",
            ])
            .arg("--alerts")
            .arg(alerts)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let reference = dir.path().join("reference.jsonl");
    let status = run_cmd(&unique("ref"), &reference).status().unwrap();
    assert!(status.success());
    let expected: BTreeSet<String> = alert_ids_in_file(&reference).into_iter().collect();
    let text = std::fs::read_to_string(&reference).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let model = lines.iter().filter(|v| is_model_alert(v)).count();
    let device_model = lines.iter().filter(|v| v["rule"] == "device-model").count();
    let rules = lines.len() - model;
    eprintln!("reference: {rules} rule alerts, {model} model alerts ({device_model} of the device model)");
    assert!(
        rules >= 50 && model >= 50 && device_model >= 2,
        "the reference run should hold ≥ 50 rule and ≥ 50 model alerts, some of the device model: \
         {rules} rule, {model} model ({device_model} device model)"
    );

    let crashed = dir.path().join("crashed.jsonl");
    let group = unique("crashy");
    // Kill moments from a printed seed: 20 points of event time, 10 of them in the device
    // model's warm-up, each run killed (SIGKILL) once its recorded frontier has passed its point,
    // a random 0–255 ms later.
    let seed: u64 = 0x9E37_79B9_7F4A_7C15;
    eprintln!("kill moments from seed {seed:#x}");
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let minute = 60_000;
    let mut points: Vec<u64> = (0..20)
        .map(|i| {
            let (lo, hi) = if i < 10 { (minute, 30 * minute) } else { (30 * minute, 58 * minute) };
            sim.start_ms + lo + next() % (hi - lo)
        })
        .collect();
    points.sort_unstable();
    let (mut kills, mut in_warmup, mut with_open, mut early) = (0, 0, 0, 0);
    for (i, point) in points.into_iter().enumerate() {
        let extra = Duration::from_millis(next() % 256);
        let start_up = Duration::from_millis(100 + next() % 1500);
        let mut child = run_cmd(&group, &crashed).spawn().unwrap();
        if i % 5 == 2 {
            // Every fifth run is killed while it starts, restores and re-reads the horizon.
            std::thread::sleep(start_up);
            early += 1;
        } else {
            // The others once they have recorded progress of their own past their point.
            let target = point.max(checkpoint_frontier(&crashed) + 1);
            let deadline = Instant::now() + Duration::from_secs(120);
            while child.try_wait().unwrap().is_none()
                && checkpoint_frontier(&crashed) < target
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(extra);
        }
        if child.try_wait().unwrap().is_none() {
            // What the run had reached: its last recorded frontier and its open episodes.
            let frontier = checkpoint_frontier(&crashed);
            let open = open_model_episodes(&crashed);
            child.kill().unwrap(); // SIGKILL
            kills += 1;
            in_warmup += usize::from(frontier < warm_until);
            with_open += usize::from(open > 0);
            eprintln!(
                "killed at {} s of event time (point {} s), {open} model episodes open",
                frontier.saturating_sub(sim.start_ms) / 1000,
                (point - sim.start_ms) / 1000
            );
        }
        child.wait().unwrap();
    }
    eprintln!(
        "{kills} kills: {in_warmup} during the device model's warm-up, {with_open} with a model episode open"
    );
    assert_eq!(kills, 20, "only {kills} runs were still going when killed ({early} killed while starting)");
    let status = run_cmd(&group, &crashed).status().unwrap();
    assert!(status.success());
    let got = alert_ids_in_file(&crashed);
    let unique_got: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique_got.len(), "duplicate alert ids in the sink");
    let lost: Vec<_> = expected.difference(&unique_got).collect();
    let extra: Vec<_> = unique_got.difference(&expected).collect();
    if !(lost.is_empty() && extra.is_empty()) {
        // Keep both alert files for a look at what differed.
        let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/kill-test");
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&reference, keep.join("reference.jsonl"));
        let _ = std::fs::copy(&crashed, keep.join("crashed.jsonl"));
        eprintln!("alert files kept in {}", keep.display());
    }
    assert!(
        lost.is_empty() && extra.is_empty(),
        "after {kills} kills: lost {} (first {:?}), extra {} (first {:?}) of {}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>(),
        expected.len()
    );
    assert!(
        in_warmup >= 5 && with_open >= 5,
        "{in_warmup} kills in the warm-up, {with_open} with an episode open"
    );
}

#[test]
fn r17_a_restart_with_another_worker_count_or_a_corrupt_snapshot_stops_with_a_clear_error_before_reading() {
    let topic = unique("snapshots");
    let brokers = kafka();
    ensure_topic(&brokers, &topic, 2).unwrap();
    let dir = tmp();
    let out = Output::Kafka { brokers: brokers.clone(), topic: topic.clone(), partitions: 2 };
    simulate_to(&sim(20, 30, 8), &out, &dir.path().join("labels.json"), None, None).unwrap();
    let bin = env!("CARGO_BIN_EXE_sensorflow");
    let alerts = dir.path().join("alerts.jsonl");
    let run = |workers: &str| {
        Command::new(bin)
            .args(["run", "--source", "kafka", "--broker", &brokers, "--topic", &topic, "--group", "g"])
            .args(["--until-idle", "4s", "--recovery-horizon", "5m", "-w", workers, "-q", "--alerts"])
            .arg(&alerts)
            .output()
            .unwrap()
    };
    let first = run("2");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let state = dir.path().join("alerts.jsonl.checkpoint.state");
    let files: Vec<PathBuf> = std::fs::read_dir(&state).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.to_string_lossy().contains("anomalies-1of2-")), "{files:?}");
    assert!(files.iter().any(|f| f.to_string_lossy().contains("device-rows-0of2-")), "{files:?}");
    let lines_before = std::fs::read_to_string(&alerts).unwrap().lines().count();

    // Another worker count: refused, naming both counts and the fallback.
    let other = run("1");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(err.contains("taken with 2 workers in all, this run has 1") && err.contains("delete"), "{err}");

    // A flipped byte in one snapshot: refused, naming the file.
    let victim = files.iter().filter(|f| f.to_string_lossy().contains("anomalies-0of2-")).max().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let corrupt = run("2");
    let err = String::from_utf8_lossy(&corrupt.stderr);
    assert!(!corrupt.status.success());
    assert!(err.contains("is corrupt (checksum mismatch)"), "{err}");
    assert!(err.contains(&victim.file_name().unwrap().to_string_lossy().to_string()), "{err}");
    // Neither refused run wrote an alert.
    assert_eq!(std::fs::read_to_string(&alerts).unwrap().lines().count(), lines_before);
}

#[test]
fn ten_thousand_malformed_kafka_messages_are_dead_lettered_and_valid_events_unaffected() {
    let sim = sim(30, 20, 3);
    let dir = tmp();
    let (direct, direct_out) = run(&config(SourceConfig::Simulator(sim.clone()), 1));

    // The valid stream, then the same stream with 10,000 bad messages mixed in.
    let clean = dir.path().join("clean.jsonl");
    sensorflow::tools::simulate::simulate(
        &sim,
        &clean,
        sensorflow::tools::simulate::Format::Jsonl,
        &dir.path().join("l.json"),
        None,
    )
    .unwrap();
    let topic = unique("flood");
    ensure_topic(&kafka(), &topic, 3).unwrap();
    let mut producer = KafkaProducer::new(&kafka(), &topic).unwrap();
    let bad_kinds: [&[u8]; 8] = [
        b"not json at all",
        br#"{"device":"d","metric":"temperature","ts":"yesterday","value":1}"#,
        br#"{"device":"d","metric":"temperature","ts":1,"value":"hot"}"#,
        br#"{"device":"d","metric":"temperature","ts":1,"value":NaN}"#,
        br#"{"device":"d","metric":"temperature","ts":1,"value":1e308}"#,
        br#"{"metric":"temperature","ts":1,"value":1}"#,
        br#"{"device":"d","metric":"temperature","ts":1,"val"#,
        b"\xff\xfe\x00 binary",
    ];
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut bad = 0u64;
    let mut valid = 0u64;
    for (i, line) in text.lines().enumerate() {
        let device = line.split('"').nth(3).unwrap();
        producer.send(device.as_bytes(), line.as_bytes()).unwrap();
        valid += 1;
        if i % 8 == 3 && bad < 10_000 {
            producer.send(format!("bad-{i}").as_bytes(), bad_kinds[(bad % 8) as usize]).unwrap();
            bad += 1;
        }
    }
    assert_eq!(bad, 10_000);
    producer.flush(Duration::from_secs(60)).unwrap();

    let mut c = config(SourceConfig::Kafka(kafka_source(&topic)), 2);
    let dead = dir.path().join("dead.jsonl");
    c.dead_letters = Some(dead.clone());
    let (s, out) = run(&c);
    assert_eq!(s.dead_lettered, 10_000, "{s}");
    assert_eq!(s.processed, valid);
    assert_eq!(s.records_in, valid + 10_000);
    assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 10_000);
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for d in out.dead_letters() {
        assert!(d.source.starts_with(&format!("kafka:{topic}/")), "{}", d.source);
        *reasons.entry(d.reason.clone()).or_default() += 1;
    }
    assert!(reasons.len() >= 5, "the bad kinds should give distinct reasons: {reasons:?}");
    assert_eq!(direct.processed, valid);
    assert_eq!(ids(&out.sorted_alerts()), ids(&direct_out.sorted_alerts()));
}

#[test]
fn mqtt_source_shares_a_subscription_over_two_workers_with_persistent_sessions() {
    let sim = sim(20, 10, 9);
    let prefix = unique("mq");
    let client_id = unique("engine");
    let filter = format!("{prefix}/#");
    // Create the workers' persistent sessions first, so the broker queues what is published
    // before the run starts (this is also what happens while a worker reconnects).
    for worker in 0..2 {
        let id = format!("{client_id}-{worker}");
        let (client, mut conn) = subscribed(&id, true, format!("$share/{client_id}/{filter}"), 10);
        client.disconnect().unwrap();
        let _ = conn.iter().take(2).count();
    }
    let dir = tmp();
    let out = Output::Mqtt { broker: mqtt(), template: format!("{prefix}/{{device}}/{{metric}}") };
    let written = simulate_to(&sim, &out, &dir.path().join("labels.json"), None, None).unwrap();

    let mut m = MqttSourceConfig::new(&mqtt(), &filter);
    m.client_id = client_id;
    m.until_idle_ms = Some(5000);
    m.topic_template = Some(format!("{prefix}/{{device}}/{{metric}}"));
    let mut c = config(SourceConfig::Mqtt(m), 2);
    c.lateness = 60_000;
    let (s, _) = run(&c);
    // Each message read once: a duplicate delivery would be dropped by de-duplication and
    // hide behind `processed`, so the records read and the duplicates are checked too.
    assert_eq!(s.records_in, written.events, "{s}");
    assert_eq!(s.duplicates, 0, "{s}");
    assert_eq!(s.processed, written.events, "{s}");
    assert_eq!(s.dead_lettered, 0);
}

#[test]
fn alerts_go_to_kafka_keyed_by_id_and_a_rerun_adds_no_key_twice() {
    let sim = sim(30, 20, 4);
    let topic = unique("alerts");
    let mut c = config(SourceConfig::Simulator(sim), 1);
    c.alerts = AlertOutput::Kafka { brokers: kafka(), topic: topic.clone() };
    let (s, out) = run(&c);
    let expected = ids(&out.sorted_alerts());
    assert!(!expected.is_empty());
    let keys = existing_keys(&kafka(), &topic, Duration::from_secs(2)).unwrap();
    let got: BTreeSet<String> = keys.iter().map(|k| String::from_utf8(k.clone()).unwrap()).collect();
    assert_eq!(keys.len(), got.len(), "no key twice");
    assert_eq!(got, expected);
    assert_eq!(s.alerts_deduplicated, 0);

    // The same input again: every alert is already in the topic.
    let (s2, _) = run(&c);
    assert_eq!(s2.alerts_deduplicated as usize, expected.len());
    let keys = existing_keys(&kafka(), &topic, Duration::from_secs(2)).unwrap();
    assert_eq!(keys.len(), expected.len());
}

#[test]
fn alerts_are_published_to_mqtt_per_device() {
    let prefix = unique("alerts");
    let (_client, mut conn) = subscribed(&unique("listener"), false, format!("{prefix}/#"), 100);
    let mut c = config(SourceConfig::Simulator(sim(30, 20, 4)), 2);
    c.alerts = AlertOutput::Mqtt { broker: mqtt(), prefix: prefix.clone() };
    let (_, out) = run(&c);
    let expected = out.sorted_alerts();
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() && Instant::now() < deadline {
        if let Ok(Ok(MqttEvent::Incoming(Packet::Publish(p)))) = conn.recv_timeout(Duration::from_millis(200))
        {
            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(p.topic, format!("{prefix}/{}", v["device"].as_str().unwrap()));
            got.insert(v["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, ids(&expected));
}

#[test]
fn an_unreachable_kafka_broker_is_a_clear_error() {
    let port = free_port();
    let mut k = KafkaSourceConfig::new(&format!("127.0.0.1:{port}"), "nothing");
    k.wait_for_topic_ms = 1000;
    let err = sensorflow::run(&config(SourceConfig::Kafka(k), 1)).unwrap_err().to_string();
    assert!(err.contains("kafka") && err.contains(&port.to_string()), "{err}");
}

/// A loopback port nothing listens on (at the moment of asking).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on the loopback `port`, failing after `limit`.
fn wait_for_port(port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Mosquitto of the test's own, with persistence on, so it can be restarted mid-run.
struct OwnMosquitto {
    child: std::process::Child,
    port: u16,
    conf: std::path::PathBuf,
}

impl OwnMosquitto {
    fn bin() -> String {
        std::env::var("SENSORFLOW_MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into())
    }

    fn start(dir: &Path, port: u16) -> Self {
        // Mosquitto started as root drops to its own user, which must be able to save there.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_inflight_messages 1000\nmax_queued_messages 0\n",
            dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let mut m = OwnMosquitto { child: Self::spawn(&conf), port, conf };
        m.wait_ready();
        m
    }

    fn spawn(conf: &Path) -> std::process::Child {
        Command::new(Self::bin())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_ready(&mut self) {
        wait_for_port(self.port, Duration::from_secs(10), "mosquitto");
    }

    /// Stops the broker gracefully (it saves sessions and queued messages) and starts it again.
    fn restart(&mut self, down_for: Duration) {
        let status = Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        self.child = Self::spawn(&self.conf);
        self.wait_ready();
    }
}

impl Drop for OwnMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_restarted_mqtt_broker_loses_nothing_between_devices_and_kafka() {
    let dir = tmp();
    let port = free_port();
    let mut broker = OwnMosquitto::start(dir.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let topic = unique("restart");
    let bridge = start_bridge(&addr, "dev", &topic);
    // 5 s of devices publishing in real time (3,000 events/s), the broker down for half a
    // second in the middle. Re-sent messages arrive out of order: within the allowed lateness.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let sim = SimConfig {
        devices: 100,
        interval_ms: 100,
        span_ms: 5000,
        start_ms: now,
        realtime_speed: Some(1.0),
        ..sim(100, 1, 21)
    };
    let labels = dir.path().join("labels.json");
    let out = Output::Mqtt { broker: addr.clone(), template: "dev/{device}/{metric}".into() };
    let publisher = std::thread::spawn(move || simulate_to(&sim, &out, &labels, None, None));
    std::thread::sleep(Duration::from_millis(1500));
    broker.restart(Duration::from_millis(500));
    let written = publisher.join().unwrap().unwrap();
    let stats = bridge.join().unwrap().unwrap();
    assert!(stats.forwarded >= written.events, "forwarded {} of {}", stats.forwarded, written.events);

    let mut c = config(SourceConfig::Kafka(kafka_source(&topic)), 2);
    c.lateness = 10_000;
    let (s, _) = run(&c);
    // Every distinct event arrives once; re-deliveries after the restart are dropped as
    // duplicates, or as late when they arrive behind the watermark.
    assert_eq!(s.processed, written.events, "{s}");
    assert_eq!(s.records_in, s.processed + s.duplicates + s.late, "{s}");
    assert_eq!(s.dead_lettered, 0);
}

/// Every message of `topic` (all partitions, each in offset order), read until `want` have
/// arrived or nothing new came for 15 s: (partition, device, seq) per message.
fn read_topic(brokers: &str, topic: &str, want: usize) -> Vec<(i32, String, u64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let partitions =
        sensorflow::connectors::kafka::partition_count(brokers, topic, Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let mut last = Instant::now();
    while got.len() < want && last.elapsed() < Duration::from_secs(15) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else { continue };
        last = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        got.push((m.partition(), v["device"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap()));
    }
    got
}

#[test]
fn the_bridge_keeps_each_devices_events_in_order_in_kafka_under_load() {
    let dir = tmp();
    let prefix = unique("order");
    let topic = unique("order");
    let bridge = start_bridge(&mqtt(), &prefix, &topic);
    // 60,000 events of 50 devices published as fast as the simulator can (no pacing): the
    // bridge has thousands of messages in flight to Kafka at once.
    let sim = SimConfig { devices: 50, interval_ms: 100, span_ms: 40_000, ..sim(50, 1, 31) };
    let out = Output::Mqtt { broker: mqtt(), template: format!("{prefix}/{{device}}/{{metric}}") };
    let written = simulate_to(&sim, &out, &dir.path().join("labels.json"), None, None).unwrap();
    assert!(written.events > 55_000, "{}", written.events);
    let stats = bridge.join().unwrap().unwrap();
    assert_eq!((stats.forwarded, stats.dead_lettered), (written.events, 0), "{stats}");
    assert!(stats.peak_in_flight > 100, "the bridge should have had many messages in flight: {stats}");

    let got = read_topic(&kafka(), &topic, written.events as usize);
    if got.len() as u64 != written.events {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", kafka()).create().unwrap();
        for p in 0..4 {
            let n = got.iter().filter(|g| g.0 == p).count();
            eprintln!(
                "partition {p}: read {n}, watermarks {:?}",
                c.fetch_watermarks(&topic, p, Duration::from_secs(5))
            );
        }
    }
    assert_eq!(got.len() as u64, written.events, "every message reaches Kafka once");
    // Each device's events sit in one partition, in the order the device sent them: seq
    // 0, 1, 2, ... with no gap, repeat or swap.
    let mut next: HashMap<String, (i32, u64)> = HashMap::new();
    for (partition, device, seq) in &got {
        let (p, expected) = next.entry(device.clone()).or_insert((*partition, 0));
        assert_eq!(*p, *partition, "{device} is in two partitions");
        assert_eq!(seq, expected, "{device}: seq {seq} where {expected} was due");
        *expected += 1;
    }
    assert_eq!(next.len(), 50);
}

/// A tansu broker of the test's own (memory storage), which the test can stop and kill.
struct OwnTansu {
    child: std::process::Child,
    addr: String,
}

impl OwnTansu {
    fn start(port: u16) -> Self {
        let bin = std::env::var("SENSORFLOW_TANSU").expect("SENSORFLOW_TANSU (set by scripts/brokers.sh)");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, Duration::from_secs(20), "tansu");
        OwnTansu { child, addr: format!("127.0.0.1:{port}") }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnTansu {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too, without letting it serve what it has buffered.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_bridge_acknowledges_mqtt_only_after_kafka_has_the_message() {
    let dir = tmp();
    let port = free_port();
    let tansu = OwnTansu::start(port);
    let prefix = unique("acks");
    let topic = unique("acks");
    let client_id = unique("acks-bridge");
    let bridge_cfg = |kafka: &str| {
        let mut b = BridgeConfig::new(&mqtt(), &format!("{prefix}/#"), kafka, &topic);
        b.template = Some(format!("{prefix}/{{device}}/{{metric}}"));
        b.client_id = client_id.clone();
        b
    };
    // Bridge A subscribes, then its Kafka broker freezes (SIGSTOP): nothing it produces is
    // acknowledged by Kafka.
    let a = bridge_cfg(&tansu.addr);
    let (subscribed, received) = (a.subscribed.clone(), a.received.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_a = stop.clone();
    let bridge_a = std::thread::spawn(move || run_bridge(&a, stop_a));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !subscribed.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the bridge did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }
    tansu.signal("-STOP");
    // Fewer messages than the broker's in-flight window to one client (20,000 in scripts/brokers.sh).
    let sim = SimConfig { devices: 5, interval_ms: 100, span_ms: 10_000, ..sim(5, 1, 41) };
    let out = Output::Mqtt { broker: mqtt(), template: format!("{prefix}/{{device}}/{{metric}}") };
    let written = simulate_to(&sim, &out, &dir.path().join("labels.json"), None, None).unwrap();
    assert!((1_000..2_000).contains(&written.events), "{}", written.events);
    // Wait until bridge A holds every message, unacknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < written.events {
        assert!(
            Instant::now() < deadline,
            "bridge A received only {} messages",
            received.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Kafka's copy dies with the broker: only the MQTT broker can still have the messages.
    drop(tansu);
    stop.store(true, Ordering::Relaxed);
    let stats_a = bridge_a.join().unwrap().unwrap();
    assert_eq!((stats_a.received, stats_a.forwarded), (written.events, 0), "{stats_a}");
    let tansu = OwnTansu::start(port);
    let mut b = bridge_cfg(&tansu.addr);
    b.until_idle = Some(Duration::from_secs(5));
    let stats_b = run_bridge(&b, Arc::new(AtomicBool::new(false))).unwrap();
    assert!(stats_b.forwarded >= written.events, "re-delivered {stats_b}");
    let got = read_topic(&tansu.addr, &topic, stats_b.forwarded as usize);
    let distinct: BTreeSet<(String, u64)> = got.into_iter().map(|(_, d, s)| (d, s)).collect();
    assert_eq!(distinct.len() as u64, written.events, "every event reaches the new Kafka");
}

/// Three hot readings stamped just ahead of now on a live topic, then silence: each run's overheat alert, its
/// write time minus its window's end (ms), and the run's summary.
fn quiet_topic_alert_delay(wall_clock_watermark: Option<u64>) -> (i64, sensorflow::Summary) {
    let topic = unique("wall");
    ensure_topic(&kafka(), &topic, 2).unwrap();
    let mut c = config(SourceConfig::Kafka(kafka_source(&topic)), 2);
    c.window = 1000;
    c.model = "none".into();
    c.wall_clock_watermark = wall_clock_watermark;
    let engine = std::thread::spawn(move || run(&c));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut producer = KafkaProducer::new(&kafka(), &topic).unwrap();
    // Stamped a second ahead, so the readings are not overtaken by a wall-clock watermark
    // however long the consumer takes to start.
    for (i, ts) in [now + 1000, now + 1001, now + 1002].into_iter().enumerate() {
        let line = format!(r#"{{"device":"hot-1","metric":"temperature","ts":{ts},"value":50.0,"seq":{i}}}"#);
        producer.send(b"hot-1", line.as_bytes()).unwrap();
    }
    // A reading stamped a minute ago, behind any wall-clock watermark.
    let old =
        format!(r#"{{"device":"hot-2","metric":"temperature","ts":{},"value":20.0,"seq":0}}"#, now - 60_000);
    producer.send(b"hot-2", old.as_bytes()).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let (s, out) = engine.join().unwrap();
    let alerts = out.alerts.lock().unwrap().clone();
    let at = out.written_at_ms.lock().unwrap().clone();
    let hot: Vec<_> = alerts.iter().zip(&at).filter(|(a, _)| &*a.key.source == "overheat").collect();
    assert_eq!(hot.len(), 1, "one overheat alert: {alerts:?}");
    (*hot[0].1 as i64 - hot[0].0.window_end as i64, s)
}

#[test]
fn the_wall_clock_watermark_closes_windows_of_a_quiet_live_topic_on_time() {
    // Pure event time: nothing newer arrives, so the window waits for the end of the input
    // (the source ends 6 s after the last message).
    let (waited, s) = quiet_topic_alert_delay(None);
    assert!(waited >= 4_000, "without the wall clock the window closes at the end: {waited} ms");
    // (The old reading is late only if it shares the hot device's partition.)
    assert_eq!(s.processed + s.late, 4, "{s}");
    assert!(s.processed >= 3, "{s}");
    // Following the wall clock 1 s behind: the window closes about 1 s after its end, and the
    // reading from a minute ago is late.
    let (delay, s) = quiet_topic_alert_delay(Some(1000));
    assert!((950..3_000).contains(&delay), "the window should close ~1 s after its end, took {delay} ms");
    assert_eq!((s.processed, s.late), (3, 1), "{s}");
}

/// The address of the HTTP server of the run behind `handle`, once it listens (fails the test
/// after `deadline`).
fn http_address(handle: &sensorflow::RunHandle, deadline: Instant) -> std::net::SocketAddr {
    loop {
        if let Some(a) = handle.http.get() {
            return *a;
        }
        assert!(Instant::now() < deadline, "the run's HTTP server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// r17: the MQTT source's reconnect had no test.
#[test]
fn r17_the_mqtt_source_reconnects_after_a_broker_restart_and_reads_on() {
    let workers = 2;
    let dir = tmp();
    let port = free_port();
    let mut broker = OwnMosquitto::start(dir.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let prefix = unique("resub");
    let client_id = unique("engine");
    let filter = format!("{prefix}/#");
    // The workers' persistent sessions exist before anything is published.
    let shared = |f: &str| if workers > 1 { format!("$share/{client_id}/{f}") } else { f.to_string() };
    for worker in 0..workers {
        let id = format!("{client_id}-{worker}");
        let (client, mut conn) = subscribed_at(&addr, &id, true, shared(&filter), 10);
        client.disconnect().unwrap();
        let _ = conn.iter().take(2).count();
    }
    let template = format!("{prefix}/{{device}}/{{metric}}");
    let mut m = MqttSourceConfig::new(&addr, &filter);
    m.client_id = client_id;
    m.until_idle_ms = Some(5000);
    m.topic_template = Some(template.clone());
    let mut c = config(SourceConfig::Mqtt(m), workers);
    c.lateness = 10_000;
    c.http = Some("127.0.0.1:0".into());
    let handle = sensorflow::RunHandle::default();
    let h = handle.clone();
    let run = std::thread::spawn(move || sensorflow::run_with(&c, None, h));

    // 5 s of devices publishing in real time (1,000 events/s).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let sim = SimConfig {
        devices: 100,
        interval_ms: 300,
        span_ms: 5000,
        start_ms: now,
        realtime_speed: Some(1.0),
        ..sim(100, 1, 23)
    };
    let labels = dir.path().join("labels.json");
    let out = Output::Mqtt { broker: addr.clone(), template };
    let publisher = std::thread::spawn(move || simulate_to(&sim, &out, &labels, None, None));
    // Restart the broker once the engine has read some of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = http_address(&handle, deadline);
    while total(&metrics(http), "sensorflow_records_in_total") == 0.0 {
        assert!(Instant::now() < deadline, "the engine read nothing before the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = total(&metrics(http), "sensorflow_records_in_total") as u64;
    broker.restart(Duration::from_millis(500));
    let written = publisher.join().unwrap().unwrap();
    let s = run.join().unwrap().unwrap();
    // The source came back and read on: most of the events came after the restart.
    assert!(written.events >= 4000, "too few events to mean anything: {}", written.events);
    assert!(
        s.records_in > before + written.events / 2,
        "read {} in all, {before} before the restart: {s}",
        s.records_in
    );
    // Every message the broker delivers is processed once (re-deliveries after the restart are
    // dropped as duplicates, or counted late): nothing is lost inside the engine.
    assert_eq!(s.records_in, s.processed + s.duplicates + s.late, "{s}");
    assert_eq!(s.dead_lettered, 0, "{s}");
    assert!(s.processed <= written.events, "more events than published: {s}");
    // Between the devices and the engine, up to 44 of 5,100 events went missing in some runs
    // under the full suite's load: the ones the devices published after the restart before
    // either worker had reconnected, which Mosquitto drops for a shared subscription
    // (`mosquitto_drops_what_a_shared_subscription_is_sent_after_a_restart_until_a_member_reconnects`).
    assert!(
        s.processed + written.events / 50 >= written.events,
        "{} of {} events: {s}",
        s.processed,
        written.events
    );
}

/// Publishes `n` QoS 1 messages `<tag><i>` on `topic` and waits for every acknowledgement.
fn publish_acked(addr: &str, topic: &str, tag: &str, n: usize) {
    let (client, mut conn) = Client::new(options(addr, &unique("pub"), false).unwrap(), 100);
    for i in 0..n {
        client.publish(topic, QoS::AtLeastOnce, false, format!("{tag}{i}")).unwrap();
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(MqttEvent::Incoming(Packet::PubAck(_))) = ev {
            acked += 1;
            if acked == n {
                break;
            }
        } else {
            ev.unwrap();
        }
    }
    client.disconnect().unwrap();
}

/// Why the MQTT source can miss messages across a broker restart at 2 or more workers (see
/// `r17_the_mqtt_source_reconnects_after_a_broker_restart_and_reads_on`): Mosquitto 2 keeps a
/// persistent session's plain subscription across a restart, but a *shared* subscription
/// receives nothing published after the restart until one of its members reconnects; those
/// messages are gone. Pinned here so a broker that fixes it shows up as a failing test.
#[test]
fn mosquitto_drops_what_a_shared_subscription_is_sent_after_a_restart_until_a_member_reconnects() {
    let dir = tmp();
    let port = free_port();
    let mut broker = OwnMosquitto::start(dir.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let prefix = unique("restart");
    let topic = format!("{prefix}/x");
    let (shared, plain) = (unique("shared"), unique("plain"));
    for (id, filter) in [(&shared, format!("$share/g/{prefix}/#")), (&plain, format!("{prefix}/#"))] {
        let (client, mut conn) = subscribed_at(&addr, id, true, filter, 10);
        client.disconnect().unwrap();
        let _ = conn.iter().take(2).count();
    }
    publish_acked(&addr, &topic, "before", 10);
    broker.restart(Duration::from_millis(200));
    publish_acked(&addr, &topic, "after", 10);
    let received = |id: &str| {
        let (client, mut conn) = Client::new(options(&addr, id, true).unwrap(), 100);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match conn.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(MqttEvent::Incoming(Packet::Publish(p)))) => {
                    got.push(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => panic!("{id}: {e}"),
            }
        }
        client.disconnect().unwrap();
        got.sort();
        got.dedup();
        got
    };
    let tagged = |tag: &str| (0..10).map(|i| format!("{tag}{i}")).collect::<BTreeSet<_>>();
    let plain_got: BTreeSet<String> = received(&plain).into_iter().collect();
    let shared_got: BTreeSet<String> = received(&shared).into_iter().collect();
    assert_eq!(plain_got, tagged("before").union(&tagged("after")).cloned().collect(), "plain subscription");
    assert_eq!(shared_got, tagged("before"), "shared subscription: what came after the restart is gone");
}

/// A tansu of the test's own on SQLite storage (`SENSORFLOW_TANSU_DURABLE`, built by
/// scripts/brokers.sh), which keeps topics, records and committed offsets across a restart.
struct DurableTansu {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl DurableTansu {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut t = DurableTansu { child: Self::spawn(dir, port), port, dir: dir.to_path_buf() };
        wait_for_port(t.port, Duration::from_secs(20), "tansu");
        if let Some(s) = t.child.try_wait().unwrap() {
            panic!("tansu exited at once: {s}");
        }
        t
    }

    fn spawn(dir: &Path, port: u16) -> std::process::Child {
        let bin = std::env::var("SENSORFLOW_TANSU_DURABLE")
            .expect("SENSORFLOW_TANSU_DURABLE (scripts/brokers.sh) names tansu with SQLite storage");
        let url = format!("tcp://127.0.0.1:{port}");
        Command::new(bin)
            .current_dir(dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL: a crash, not a shutdown), keeps it down for `down_for`,
    /// starts it again on the same storage. (A graceful stop is no kinder here: tansu 0.6
    /// answers the produce requests in flight at SIGTERM with UNKNOWN_SERVER_ERROR, which
    /// producers do not retry; see the README.)
    fn restart(&mut self, down_for: Duration) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(down_for);
        self.child = Self::spawn(&self.dir, self.port);
        wait_for_port(self.port, Duration::from_secs(20), "tansu after a restart");
    }
}

impl Drop for DurableTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// r17: Kafka broker restarts were untested (tansu's memory storage keeps nothing).
#[test]
fn r17_a_durable_kafka_broker_restarted_twice_mid_run_loses_and_duplicates_nothing() {
    let dir = tmp();
    let mut broker = DurableTansu::start(dir.path());
    let brokers = broker.addr();
    let (events, alerts_topic) = ("events", "alerts");
    // Devices publish for about 60 s (10 minutes of event time at 10×), dense with anomalies.
    // What a device sends while the broker is down arrives after it comes back: the allowed
    // lateness (60 s of event time, 6 s of wall time here) covers the outage.
    let sim = SimConfig { realtime_speed: Some(10.0), anomaly_rate_per_hour: 40.0, ..sim(20, 10, 31) };
    let out = Output::Kafka { brokers: brokers.clone(), topic: events.into(), partitions: 3 };
    let labels = dir.path().join("labels.json");
    let publisher = std::thread::spawn(move || simulate_to(&sim, &out, &labels, None, None));

    // The engine reads the topic and writes its alerts to another topic of the same broker.
    let mut k = KafkaSourceConfig::new(&brokers, events);
    k.group = unique("durable");
    k.until_idle_ms = Some(15_000);
    let mut c = config(SourceConfig::Kafka(k), 2);
    c.lateness = 60_000;
    c.model = "none".into();
    c.alerts = AlertOutput::Kafka { brokers: brokers.clone(), topic: alerts_topic.into() };
    c.http = Some("127.0.0.1:0".into());
    let handle = sensorflow::RunHandle::default();
    let h = handle.clone();
    let engine = std::thread::spawn(move || sensorflow::run_with(&c, None, h));
    let deadline = Instant::now() + Duration::from_secs(120);
    let http = http_address(&handle, deadline);
    // Two restarts while both the devices and the engine are busy: after about 1/4 and 2/3 of
    // the events have been read.
    for (n, at) in [(1, 9_000.0), (2, 24_000.0)] {
        loop {
            if engine.is_finished() || std::net::TcpStream::connect(http).is_err() {
                panic!("the engine ended before restart {n}: {:?}", engine.join());
            }
            if total(&metrics(http), "sensorflow_records_in_total") >= at {
                break;
            }
            assert!(Instant::now() < deadline, "the engine stalled before restart {n}");
            std::thread::sleep(Duration::from_millis(20));
        }
        broker.restart(Duration::from_millis(500));
    }
    let written = publisher.join().unwrap().unwrap();
    let s = engine.join().unwrap().unwrap();
    // 36,000 readings planned, fewer with the injected dropouts.
    assert!(written.events > 30_000, "{}", written.events);
    assert_eq!(s.processed, written.events, "{s}");
    assert_eq!(s.records_in, s.processed + s.duplicates + s.late, "{s}");
    assert_eq!(s.dead_lettered, 0, "{s}");
    // Records can reach the engine twice across a broker crash (a consumer group restarting
    // from its last committed offsets, or a producer batch retried after the broker stored it
    // but died before answering): they are dropped as duplicates, never processed twice (above).
    // One full-suite run saw 16 such records (session 12); where they came from is not known.

    // The uninterrupted reference: the same (durable) topic read again from the start.
    let mut k = KafkaSourceConfig::new(&brokers, events);
    k.group = unique("reference");
    k.until_idle_ms = Some(6000);
    let mut r = config(SourceConfig::Kafka(k), 2);
    r.lateness = 60_000;
    r.model = "none".into();
    let (rs, out) = run(&r);
    assert_eq!(rs.processed, written.events, "{rs}");
    assert_eq!(rs.records_in, rs.processed + rs.duplicates, "{rs}");
    let expected = ids(&out.sorted_alerts());
    assert!(expected.len() >= 50, "the reference should hold at least 50 alerts, got {}", expected.len());
    let keys = existing_keys(&brokers, alerts_topic, Duration::from_secs(3)).unwrap();
    let got: BTreeSet<String> = keys.iter().map(|k| String::from_utf8(k.clone()).unwrap()).collect();
    assert_eq!(keys.len(), got.len(), "an alert written to Kafka twice");
    let lost: Vec<_> = expected.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&expected).take(5).collect();
    assert!(lost.is_empty() && extra.is_empty(), "of {}: lost {lost:?}…, extra {extra:?}…", expected.len());
}
