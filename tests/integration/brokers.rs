//! Tests against real brokers: Mosquitto and tansu (a Kafka-protocol broker), started by
//! `scripts/test.sh` (scripts/brokers.sh), which exports `SENSORFLOW_MQTT` and
//! `SENSORFLOW_KAFKA`. These tests fail, not skip, when the brokers are missing.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
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
    let (client, mut conn) = Client::new(options(&mqtt(), id, persistent).unwrap(), cap);
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

#[test]
fn kafka_run_killed_ten_times_loses_and_duplicates_no_alert() {
    let topic = unique("crash");
    let brokers = kafka();
    ensure_topic(&brokers, &topic, 4).unwrap();
    let dir = tmp();
    let out = Output::Kafka { brokers: brokers.clone(), topic: topic.clone(), partitions: 4 };
    let written = simulate_to(&sim(200, 60, 5), &out, &dir.path().join("labels.json"), None, None).unwrap();
    assert!(written.events > 1_000_000);

    let bin = env!("CARGO_BIN_EXE_sensorflow");
    let run_cmd = |group: &str, alerts: &Path| {
        let mut c = Command::new(bin);
        c.args(["run", "--source", "kafka", "--broker", &brokers, "--topic", &topic, "--group", group])
            .args(["--until-idle", "8s", "--recovery-horizon", "15m", "--model", "none", "-w", "2", "-q"])
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
    assert!(expected.len() > 20, "the reference run should alert, got {}", expected.len());

    let crashed = dir.path().join("crashed.jsonl");
    let group = unique("crashy");
    // Pseudo-random kill points from a fixed seed, spread over a run's length.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut kills = 0;
    for _ in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(300 + x % 2500);
        let mut child = run_cmd(&group, &crashed).spawn().unwrap();
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 5, "only {kills} runs were still going when killed");
    let status = run_cmd(&group, &crashed).status().unwrap();
    assert!(status.success());
    let got = alert_ids_in_file(&crashed);
    let unique_got: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique_got.len(), "duplicate alert ids in the sink");
    let lost: Vec<_> = expected.difference(&unique_got).collect();
    let extra: Vec<_> = unique_got.difference(&expected).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "after {kills} kills: lost {} (first {:?}), extra {} (first {:?}) of {}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>(),
        expected.len()
    );
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
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut k = KafkaSourceConfig::new(&format!("127.0.0.1:{port}"), "nothing");
    k.wait_for_topic_ms = 1000;
    let err = sensorflow::run(&config(SourceConfig::Kafka(k), 1)).unwrap_err().to_string();
    assert!(err.contains("kafka") && err.contains(&port.to_string()), "{err}");
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
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
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
