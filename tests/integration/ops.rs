//! Operations: `/metrics` against the run's own summary, `/alerts` as server-sent events
//! against the alert file, bad HTTP requests, and OTLP traces received by a small OTLP/HTTP
//! receiver in the test itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensorflow::config::AlertOutput;
use sensorflow::connectors::kafka::{ensure_topic, KafkaProducer};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::SourceConfig;
use sensorflow::{run_with, RunHandle, Summary};

use crate::brokers::{kafka, kafka_source, unique};
use crate::common::{config, tmp};
use crate::http_client::{get, metrics, raw, request, total, Sse};

/// Starts `config` on a thread and returns once its HTTP server listens.
fn start(
    config: sensorflow::RunConfig,
) -> (SocketAddr, RunHandle, std::thread::JoinHandle<Result<Summary, sensorflow::Error>>) {
    let handle = RunHandle::default();
    let h = handle.clone();
    let run = std::thread::spawn(move || run_with(&config, None, h));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(addr) = handle.http.get() {
            return (*addr, handle, run);
        }
        assert!(Instant::now() < deadline, "the HTTP server did not start");
        assert!(!run.is_finished(), "the run ended before its HTTP server started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finished(addr: SocketAddr) -> bool {
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["finished"].as_bool().unwrap()
}

#[test]
fn metrics_scraped_during_a_kafka_run_agree_with_its_summary() {
    // A topic with valid events, re-sent duplicates, events behind their watermark and bad
    // messages, so every term of the balance is non-zero.
    let topic = unique("metrics");
    ensure_topic(&kafka(), &topic, 3).unwrap();
    let mut producer = KafkaProducer::new(&kafka(), &topic).unwrap();
    let t0 = 1_704_067_200_000u64;
    let (mut valid, mut dups, mut late, mut bad) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..3000u64 {
        let device = format!("m-{:02}", i % 20);
        let line = crate::common::json_event(&device, "temperature", t0 + i * 500, 20.0 + (i % 7) as f64, i);
        producer.send(device.as_bytes(), line.as_bytes()).unwrap();
        valid += 1;
        if i % 50 == 7 {
            producer.send(device.as_bytes(), line.as_bytes()).unwrap();
            dups += 1;
        }
        if i % 100 == 50 {
            // A minute behind everything sent before it on the same device (same partition).
            let old =
                crate::common::json_event(&device, "temperature", t0 + i * 500 - 60_000, 1.0, 1_000_000 + i);
            producer.send(device.as_bytes(), old.as_bytes()).unwrap();
            late += 1;
        }
        if i % 100 == 3 {
            producer.send(device.as_bytes(), b"{\"device\":\"m\",\"value\":\"not a number\"}").unwrap();
            bad += 1;
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let expected_in = valid + dups + late + bad;

    let mut c = config(SourceConfig::Kafka(kafka_source(&topic)), 2);
    c.http = Some("127.0.0.1:0".into());
    let (addr, _handle, run) = start(c);
    let mut scrapes = 0;
    let mut balanced: Option<BTreeMap<String, f64>> = None;
    let mut last_in = 0.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !run.is_finished() {
        let m = metrics(addr);
        if finished(addr) {
            break;
        }
        scrapes += 1;
        let records_in = total(&m, "sensorflow_records_in_total");
        let out = total(&m, "sensorflow_events_processed_total")
            + total(&m, "sensorflow_late_events_total")
            + total(&m, "sensorflow_dead_letters_total")
            + total(&m, "sensorflow_duplicates_total");
        // In flight, some records are read but not yet accounted for; never the reverse.
        assert!(records_in >= out, "records in {records_in} < accounted {out}");
        assert!(records_in >= last_in, "records_in went backwards");
        last_in = records_in;
        if records_in == expected_in as f64 && out == records_in {
            balanced = Some(m);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = run.join().unwrap().unwrap();
    let m = balanced.unwrap_or_else(|| panic!("no balanced scrape during the run ({scrapes} scrapes)"));
    assert!(summary.balanced(), "{summary}");
    assert_eq!(summary.records_in, expected_in);
    assert_eq!(summary.late, late);
    assert_eq!(summary.dead_lettered, bad);
    assert_eq!(summary.duplicates, dups);
    let get = |name: &str| total(&m, name) as u64;
    assert_eq!(get("sensorflow_records_in_total"), summary.records_in);
    assert_eq!(get("sensorflow_events_processed_total"), summary.processed);
    assert_eq!(get("sensorflow_late_events_total"), summary.late);
    assert_eq!(get("sensorflow_dead_letters_total"), summary.dead_lettered);
    assert_eq!(get("sensorflow_duplicates_total"), summary.duplicates);
    // Per worker: two series that add up; what the sources passed on is in minus late and bad.
    let per_worker: Vec<_> = m.keys().filter(|k| k.starts_with("sensorflow_records_in_total{")).collect();
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert_eq!(get("sensorflow_events_out_total"), summary.records_in - summary.late - summary.dead_lettered);
    // A watermark gauge per partition, named after the topic.
    for p in 0..3 {
        let key = format!("sensorflow_watermark_timestamp_seconds{{partition=\"kafka:{topic}/{p}\"");
        assert!(m.keys().any(|k| k.starts_with(&key)), "no watermark for partition {p}");
    }
}

/// A simulator run paced to last about `secs` seconds, with plenty of alerts.
fn paced_sim(secs: f64) -> SimConfig {
    let span_ms = 30 * 60 * 1000;
    SimConfig {
        devices: 80,
        span_ms,
        anomaly_rate_per_hour: 6.0,
        seed: 11,
        realtime_speed: Some(span_ms as f64 / 1000.0 / secs),
        ..SimConfig::default()
    }
}

#[test]
fn sse_clients_receive_every_alert_of_the_alert_file_and_bad_requests_do_not_stall_the_run() {
    let dir = tmp();
    let alerts = dir.path().join("alerts.jsonl");
    let mut c = config(SourceConfig::Simulator(paced_sim(14.0)), 2);
    c.alerts = AlertOutput::File(alerts.clone());
    c.http = Some("127.0.0.1:0".into());
    let (addr, _handle, run) = start(c);

    // Client A from the first alert on; client B from whenever it connects (once the first
    // alert is out); client C resumes after alert 2 with Last-Event-ID, which wins over `after`.
    let a = std::thread::spawn(move || Sse::open(addr, "/alerts?after=0").read_to_end());
    let c = std::thread::spawn(move || {
        Sse::open_with(addr, "/alerts?after=0", "Last-Event-ID: 2\r\n").read_to_end()
    });
    let b = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(addr, "/alerts?limit=1").body == "[]" {
            assert!(Instant::now() < deadline, "no alert within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sse::open(addr, "/alerts").read_to_end()
    });
    // A client that opens a stream and never reads it.
    let mut idle_sse = TcpStream::connect(addr).unwrap();
    idle_sse.write_all(b"GET /alerts?stream=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // A client that sends half a request head and stalls.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let slow_since = Instant::now();

    assert_eq!(get(addr, "/no/such/path").status, 404);
    let r = request(addr, "POST", "/metrics", Some("{}"));
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").map(String::as_str), Some("GET, HEAD"));
    assert_eq!(get(addr, "/alerts?limit=lots").status, 400);
    assert_eq!(get(addr, "/alerts?after=-1").status, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let answer = raw(addr, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{:.80}", answer);
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert!(page.body.contains("id=\"throughput\"") && page.body.contains("new EventSource(\"/alerts\")"));

    // While those two clients hang on, the run keeps moving and the server keeps answering.
    let before = total(&metrics(addr), "sensorflow_records_in_total");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = Instant::now();
        let after = total(&metrics(addr), "sensorflow_records_in_total");
        assert!(asked.elapsed() < Duration::from_secs(1), "a scrape took {:?}", asked.elapsed());
        if after > before {
            break;
        }
        assert!(Instant::now() < deadline, "the run stalled at {before} records");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The stalled head is cut off after the server's 10 s head timeout.
    slow.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = slow_since.elapsed();
    assert!(waited >= Duration::from_secs(9) && waited < Duration::from_secs(14), "closed after {waited:?}");

    let summary = run.join().unwrap().unwrap();
    assert!(!summary.stopped_early && summary.balanced(), "{summary}");
    drop(idle_sse);
    let file: Vec<String> = std::fs::read_to_string(&alerts).unwrap().lines().map(String::from).collect();
    assert!(file.len() >= 20, "too few alerts to mean anything: {}", file.len());
    let from_a = a.join().unwrap();
    let lines_a: Vec<String> = from_a.iter().map(|e| e.data.clone()).collect();
    assert_eq!(lines_a, file, "client A must see exactly the alert file, in order");
    let ids: Vec<u64> = from_a.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, (1..=file.len() as u64).collect::<Vec<_>>());
    assert!(from_a.iter().all(|e| e.event == "message"), "no gap events expected");
    let from_c = c.join().unwrap();
    let lines_c: Vec<String> = from_c.iter().map(|e| e.data.clone()).collect();
    assert_eq!(lines_c[..], file[2..], "client C resumes after the alert its Last-Event-ID names");
    assert_eq!(from_c[0].id.as_deref(), Some("3"));
    let lines_b: Vec<String> = b.join().unwrap().iter().map(|e| e.data.clone()).collect();
    assert!(!lines_b.is_empty() && lines_b.len() < file.len(), "B connected mid-run: {}", lines_b.len());
    assert_eq!(lines_b[..], file[file.len() - lines_b.len()..], "client B sees the tail of the file");
}

/// r17: the connection limit had no test.
#[test]
fn r17_connections_over_the_limit_get_503_and_the_server_recovers_when_they_close() {
    let mut c = config(SourceConfig::Simulator(paced_sim(30.0)), 1);
    c.alerts = AlertOutput::None;
    c.http = Some("127.0.0.1:0".into());
    let (addr, handle, run) = start(c);
    // 256 connections (the server's limit) that send nothing; each stays open for the
    // server's 10 s head timeout.
    let held: Vec<TcpStream> = (0..256).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:.80}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the connections closed: {answer:.80}");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let summary = run.join().unwrap().unwrap();
    assert!(summary.balanced(), "{summary}");
}

/// Spans received by [`OtlpReceiver`]: name → attributes, span id, links.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    span_id: String,
    attrs: BTreeMap<String, String>,
    links: Vec<String>,
}

/// A minimal OTLP/HTTP (JSON) trace receiver: accepts `POST /v1/traces`, answers `{}`.
struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl OtlpReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve_otlp(stream, &sink));
            }
        });
        OtlpReceiver { addr, spans }
    }
}

fn serve_otlp(stream: TcpStream, sink: &Mutex<Vec<Span>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut length = 0;
        let mut content_type = String::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(path, "/v1/traces");
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut got = Vec::new();
        for rs in v["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    let mut attrs = BTreeMap::new();
                    for a in s["attributes"].as_array().into_iter().flatten() {
                        let value = &a["value"];
                        let text = value["stringValue"]
                            .as_str()
                            .map(String::from)
                            .or_else(|| value["intValue"].as_str().map(String::from))
                            .or_else(|| value["intValue"].as_i64().map(|i| i.to_string()))
                            .unwrap_or_else(|| value.to_string());
                        attrs.insert(a["key"].as_str().unwrap().to_string(), text);
                    }
                    let links = s["links"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| l["spanId"].as_str().unwrap().to_string())
                        .collect();
                    got.push(Span {
                        name: s["name"].as_str().unwrap().to_string(),
                        span_id: s["spanId"].as_str().unwrap().to_string(),
                        attrs,
                        links,
                    });
                }
            }
        }
        sink.lock().unwrap().extend(got);
        let _ = writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    }
}

#[test]
fn alert_spans_exported_over_otlp_lead_back_to_their_source_batch_and_partition() {
    let receiver = OtlpReceiver::start();
    let dir = tmp();
    let alerts = dir.path().join("alerts.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorflow"))
        .args(["run", "--source", "simulator", "--devices", "40", "--span", "20m", "--anomaly-rate", "4"])
        .args(["--workers", "2", "-q", "--alerts"])
        .arg(&alerts)
        .args(["--otlp-endpoint", &format!("http://{}", receiver.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spans = receiver.spans.lock().unwrap().clone();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let batches = named("source_batch");
    let scoring = named("score_batch");
    let alert_spans = named("alert");
    assert!(!batches.is_empty() && !scoring.is_empty(), "{} spans", spans.len());
    assert!(scoring.iter().all(|s| s.attrs.get("windows").is_some_and(|w| w != "0")));
    let file_ids: BTreeSet<String> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    let span_ids: BTreeSet<String> = alert_spans.iter().map(|s| s.attrs["alert_id"].clone()).collect();
    assert!(!file_ids.is_empty(), "the run wrote no alert: nothing to trace");
    assert_eq!(span_ids, file_ids, "one alert span per written alert");
    let by_id: BTreeMap<&str, &Span> = batches.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    for a in &alert_spans {
        assert_eq!(a.links.len(), 1, "alert {:?} has no link to its batch", a.attrs);
        let batch =
            by_id.get(a.links[0].as_str()).unwrap_or_else(|| panic!("link to an unexported span: {a:?}"));
        assert_eq!(a.attrs["partition"], batch.attrs["partition"]);
        assert_eq!(a.attrs["batch"], batch.attrs["batch"]);
        assert!(batch.attrs["partition"].starts_with("simulator/"), "{:?}", batch.attrs);
    }
}

#[test]
fn an_unreachable_otlp_collector_is_reported_once_and_the_run_still_finishes() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorflow"))
        .args(["run", "--source", "simulator", "--devices", "50", "--span", "10m", "-q", "--alerts", "none"])
        .args(["--otlp-endpoint", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let reports =
        stderr.lines().filter(|l| l.contains("spans to http://127.0.0.1") && l.contains("failed")).count();
    assert_eq!(reports, 1, "one report while it keeps failing: {stderr}");
}

#[test]
fn an_http_address_that_cannot_be_served_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (addr, expected) in
        [(format!("127.0.0.1:{port}"), "cannot listen"), ("not-an-address".to_string(), "cannot listen")]
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorflow"))
            .args(["run", "--devices", "5", "--span", "1m", "-q", "--alerts", "none", "--http", &addr])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{addr}: {stderr}");
        assert!(stderr.contains(&format!("--http {addr}")) && stderr.contains(expected), "{addr}: {stderr}");
    }
    drop(taken);
}
