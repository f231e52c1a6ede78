//! The classic IoT topology at a fixed offered rate: simulator → Mosquitto → `bridge` →
//! Kafka (tansu) → `sensorflow run` on 2 workers → alerts, all in real time.
//!
//! Run with `scripts/bench-connectors.sh` (starts the brokers, then `cargo bench --bench
//! connectors`). The simulator is paced so event time tracks the wall clock (start = now,
//! real-time speed 1), so an alert's end-to-end latency is the wall-clock moment it is
//! written minus its window's end: the time from the device publishing the event that
//! closed the window to the alert reaching the sink, through both brokers and the bridge.
//! Settings: `SF_RATE` (events/s, default 50,000), `SF_SECS` (default 60), `SF_LINGER_MS` (the
//! bridge's linger), `SF_EARLY=1` (the default rules with overheat and freezing firing early;
//! their alerts are then measured from the reading that fired them).
//!
//! Every hop also records, per event (or per window and alert), the wall-clock time since the
//! event was due (see `sensorflow_operators::runtime::probe`): the per-hop table shows where
//! the latency accumulates. Windows that end in the last second of the run are closed by the
//! idle timeout, not by newer events: their figures are reported apart as the tail.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sensorflow::config::{AlertOutput, RunConfig};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::{KafkaSourceConfig, SourceConfig};
use sensorflow::tools::bridge::{run_bridge, BridgeConfig};
use sensorflow::tools::simulate::{simulate_to, Output};
use sensorflow::{run_with, Collected, RunHandle};
use sensorflow_operators::lock;
use sensorflow_operators::runtime::probe;

fn main() {
    let (Ok(mqtt), Ok(kafka)) = (std::env::var("SENSORFLOW_MQTT"), std::env::var("SENSORFLOW_KAFKA")) else {
        eprintln!(
            "connectors bench: SENSORFLOW_MQTT / SENSORFLOW_KAFKA not set; run scripts/bench-connectors.sh"
        );
        std::process::exit(2);
    };
    let rate = common::env_u64("SF_RATE", 50_000);
    let secs = common::env_u64("SF_SECS", 60);
    // 3 metrics per device every 100 ms: devices = rate / 30.
    let devices = (rate / 30).max(1);
    let mut sim = SimConfig {
        devices,
        interval_ms: 100,
        span_ms: secs * 1000,
        realtime_speed: Some(1.0),
        anomaly_rate_per_hour: 60.0,
        seed: 42,
        ..SimConfig::default()
    };
    let run_id = std::process::id();
    let topic = format!("bench-{run_id}");
    let prefix = format!("bench-{run_id}");
    let template = format!("{prefix}/{{device}}/{{metric}}");

    let mut b = BridgeConfig::new(&mqtt, &format!("{prefix}/#"), &kafka, &topic);
    b.template = Some(template.clone());
    b.client_id = format!("bench-bridge-{run_id}");
    b.until_idle = Some(Duration::from_secs(4));
    b.partitions = 4;
    let linger_ms = common::env_u64("SF_LINGER_MS", b.linger.as_millis() as u64);
    b.linger = Duration::from_millis(linger_ms);
    let subscribed = b.subscribed.clone();
    let bridge = std::thread::spawn(move || run_bridge(&b, Arc::new(AtomicBool::new(false))));
    while !subscribed.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut k = KafkaSourceConfig::new(&kafka, &topic);
    k.group = format!("bench-{run_id}");
    k.until_idle_ms = Some(6000);
    // SF_EARLY=1: the default rules, with the two that can (overheat `max >`, freezing `min <`)
    // firing early.
    let early = common::env_u64("SF_EARLY", 0) == 1;
    let rules = early.then(|| {
        let text = sensorflow::config::rules::DEFAULT_RULES
            .replace("name = \"overheat\"\n", "name = \"overheat\"\nearly = true\n")
            .replace("name = \"freezing\"\n", "name = \"freezing\"\nearly = true\n");
        let path = common::data_dir().join("connectors-early-rules.toml");
        std::fs::write(&path, text).expect("write the rules");
        path
    });
    let config = RunConfig {
        source: SourceConfig::Kafka(k),
        workers: 2,
        window: 1000,
        rules,
        alerts: AlertOutput::None,
        summary: false,
        ..RunConfig::default()
    };
    let collected = Collected::default();
    let c2 = collected.clone();
    let engine = std::thread::spawn(move || run_with(&config, Some(c2), RunHandle::default()));

    // The simulator paces from its first poll: start it on the next whole second, with its
    // event time starting there, so an event's time is the wall-clock moment it is due.
    let wall =
        || SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    sim.start_ms = wall() / 1000 * 1000 + 1000;
    while wall() < sim.start_ms {
        std::thread::sleep(Duration::from_micros(200));
    }
    // Windows ending after the last event are closed by the idle timeout: the run's tail.
    probe::enable(sim.start_ms + sim.span_ms - sim.interval_ms);
    let started = Instant::now();
    let labels = common::data_dir().join("connectors-labels.json");
    let out = Output::Mqtt { broker: mqtt, template };
    let written = simulate_to(&sim, &out, &labels, None, None).expect("simulate");
    let publish_secs = started.elapsed().as_secs_f64();
    let stats = bridge.join().expect("bridge thread").expect("bridge");
    let summary = engine.join().expect("engine thread").expect("engine");

    let alerts = lock(&collected.alerts).clone();
    let at = lock(&collected.written_at_ms).clone();
    // Rule alerts (on 1-s windows) and the model's per-event alerts apart: a window's alert can
    // be written once the window has ended, a per-event score once the next event is in.
    let mut e2e = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let mut e2e_model = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    // Early alerts: from the reading that made the condition true to the alert written.
    let mut e2e_early = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for (a, w) in alerts.iter().zip(&at) {
        if let Some(reading) = a.early_at {
            let _ = e2e_early.record(w.saturating_sub(reading));
            continue;
        }
        // Alerts from the end-of-input flush close windows without a newer event: skip them.
        if a.window_end < sim.start_ms + sim.span_ms - sim.interval_ms {
            let h = if a.window_end - a.window_start >= 1000 { &mut e2e } else { &mut e2e_model };
            let _ = h.record(w.saturating_sub(a.window_end));
        }
    }
    println!("\nconnectors: simulator → Mosquitto → bridge → tansu → sensorflow run (2 workers)");
    println!("offered           {rate} events/s for {secs} s ({devices} devices × 3 metrics every 100 ms)");
    println!(
        "published         {} events in {publish_secs:.1} s = {:.0} events/s",
        written.events,
        written.events as f64 / publish_secs
    );
    println!("bridge            {stats}");
    println!(
        "engine            {} in, {} processed, {} late, {} dead-lettered, {} duplicates; {} alerts",
        summary.records_in,
        summary.processed,
        summary.late,
        summary.dead_lettered,
        summary.duplicates,
        alerts.len()
    );
    println!("publish→alert     (rule alerts, window end → alert written) {}", line(&e2e));
    println!("  model alerts    {} (per event, after the next event)", line(&e2e_model));
    if early {
        println!("  early alerts    {} (reading → alert written)", line(&e2e_early));
    }
    println!("in-engine ingest→alert {:?}", summary.latency);
    let hops = probe::report();
    let ms = |us: u64| us as f64 / 1000.0;
    println!("\nper hop: wall-clock time since the event (window end, for windows and alerts) was due, ms");
    println!(
        "{:<20} {:>10} {:>9} {:>9} {:>9} {:>9}   tail: {:>6} {:>9} {:>9}",
        "hop", "n", "p50", "p99", "p99.9", "max", "n", "p50", "max"
    );
    for (s, t) in &hops {
        println!(
            "{:<20} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2}   tail: {:>6} {:>9.2} {:>9.2}",
            s.hop,
            s.n,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
            t.n,
            ms(t.p50_us),
            ms(t.max_us)
        );
    }
    let lost = written.events.saturating_sub(summary.records_in);
    let extra = summary.records_in.saturating_sub(written.events);
    println!(
        "delivery          {} published, {} forwarded by the bridge, {} read by the engine: {} lost, {} extra, {} duplicates",
        written.events, stats.forwarded, summary.records_in, lost, extra, summary.duplicates
    );
    let json = serde_json::json!({
        "bench": "connectors",
        "machine": common::machine(),
        "offered_events_per_sec": rate,
        "seconds": secs,
        "events": written.events,
        "published_events_per_sec": written.events as f64 / publish_secs,
        "bridge_forwarded": stats.forwarded,
        "engine_records_in": summary.records_in,
        "engine_processed": summary.processed,
        "alerts": alerts.len(),
        "lost": lost,
        "extra_deliveries": extra,
        "duplicates": summary.duplicates,
        "bridge_peak_in_flight": stats.peak_in_flight,
        "hops": hops.iter().map(|(s, t)| serde_json::json!({
            "hop": s.hop,
            "steady": { "n": s.n, "p50_ms": ms(s.p50_us), "p99_ms": ms(s.p99_us), "p999_ms": ms(s.p999_us), "max_ms": ms(s.max_us) },
            "tail": { "n": t.n, "p50_ms": ms(t.p50_us), "p99_ms": ms(t.p99_us), "max_ms": ms(t.max_us) },
        })).collect::<Vec<_>>(),
        "publish_to_alert_ms": figures(&e2e),
        "publish_to_model_alert_ms": figures(&e2e_model),
        "linger_ms": linger_ms,
        "early": early,
        "publish_to_early_alert_ms": figures(&e2e_early),
    });
    let path = common::results_dir().join("connectors.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write result");
    println!("result written to {}", path.display());
}

/// A latency histogram (ms) as one line of the report.
fn line(h: &hdrhistogram::Histogram<u64>) -> String {
    let q = |p| h.value_at_quantile(p);
    format!(
        "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  (n={})",
        q(0.5),
        q(0.99),
        q(0.999),
        h.max(),
        h.len()
    )
}

/// A latency histogram (ms) for the JSON result.
fn figures(h: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    let q = |p| h.value_at_quantile(p);
    serde_json::json!({ "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": h.max(), "n": h.len() })
}
