//! The assembled pipeline: determinism, accounting, rules reload, sinks.

use std::time::Duration;

use sensorflow::config::AlertOutput;
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::SourceConfig;
use sensorflow::tools::simulate::{simulate, Format};
use sensorflow_operators::AlertKind;

use crate::common::*;

#[test]
fn same_alerts_at_1_2_and_4_workers_from_the_simulator() {
    let mut views = Vec::new();
    for workers in [1, 2, 4] {
        let (summary, c) = run(&config(SourceConfig::Simulator(small_sim()), workers));
        assert!(summary.balanced(), "{summary}");
        assert_eq!(summary.records_in, summary.processed, "simulator input is clean");
        views.push(alert_view(&c));
    }
    assert!(views[0].len() >= 20, "an anomaly-rich run should alert: {}", views[0].len());
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);
}

#[test]
fn same_alerts_at_1_2_and_4_workers_from_a_split_file() {
    // A JSON-lines file is split into byte ranges per worker, so a device's events are read
    // by several workers and meet again after the exchange.
    let dir = tmp();
    let data = dir.path().join("sim.jsonl");
    simulate(&small_sim(), &data, Format::Jsonl, &dir.path().join("labels.json"), None).unwrap();
    let mut views = Vec::new();
    for workers in [1, 2, 4] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![data.clone()] }, workers);
        cfg.lateness = 5_000; // byte ranges are read at different speeds
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!(summary.late, 0);
        views.push(alert_view(&c));
    }
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);
    // The file replays the simulator exactly, so it alerts exactly like the simulator.
    let (_, direct) = run(&config(SourceConfig::Simulator(small_sim()), 1));
    assert_eq!(views[0], alert_view(&direct));
}

#[test]
fn flow_control_holds_sources_back_and_keeps_the_alerts_at_1_and_2_workers() {
    // The simulator file (about 30 MB) is dealt to 2 workers in 4 MiB blocks; a bound of 1,024
    // events in flight makes the sources wait for the graph again and again.
    let dir = tmp();
    let data = dir.path().join("sim.jsonl");
    simulate(&small_sim(), &data, Format::Jsonl, &dir.path().join("labels.json"), None).unwrap();
    assert!(std::fs::metadata(&data).unwrap().len() > 8 << 20, "the file spans several blocks");
    let mut unbounded = config(SourceConfig::Jsonl { paths: vec![data.clone()] }, 1);
    unbounded.max_in_flight = 1 << 32;
    let (summary, reference) = run(&unbounded);
    assert_eq!(summary.held_back, 0, "{summary}");
    assert!(reference.sorted_alerts().len() > 20, "a reference with many alerts");
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![data.clone()] }, workers);
        cfg.max_in_flight = 1024;
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!(summary.late, 0, "{summary}");
        assert!(summary.held_back > 0, "the bound held the sources back at {workers} workers: {summary}");
        assert_eq!(alert_view(&c), alert_view(&reference), "same alerts at {workers} workers");
    }
    let mut zero = config(SourceConfig::Jsonl { paths: vec![data] }, 1);
    zero.max_in_flight = 0;
    let err = sensorflow::engine::run(&zero).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("max_in_flight"), "{err}");
}

#[test]
fn a_device_idle_past_the_state_idle_time_is_evicted_and_starts_fresh_at_1_and_2_workers() {
    // dev-a reports for 10 minutes (seq 0..600), goes quiet for two hours while 30 other
    // devices go on, then comes back rebooted: its seqs start at 0 again. Kept state would drop
    // the return as duplicates; evicted state takes it as a fresh device. The file (about
    // 30 MB) is dealt to 2 workers in blocks, and a small in-flight bound keeps the workers
    // in step, so dev-a's return reaches the graph after its first life.
    let t0 = 1_700_000_000_000u64;
    let mut lines = Vec::new();
    for s in 0..3 * 3600u64 {
        let ts = t0 + s * 1000;
        let value = 20.0 + 0.1 * (s % 10) as f64;
        for d in 0..30 {
            lines.push(json_event(&format!("dev-{d}"), "temp", ts, value, s));
        }
        if s < 600 {
            lines.push(json_event("dev-a", "temp", ts + 1, value, s));
        } else if (7800..8400).contains(&s) {
            lines.push(json_event("dev-a", "temp", ts + 1, value, s - 7800));
        }
    }
    let dir = tmp();
    let path = write_lines(dir.path(), "idle.jsonl", &lines);
    let total = lines.len() as u64;
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        cfg.state_idle = 3_600_000;
        cfg.max_in_flight = 1024;
        let (summary, _) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!((summary.processed, summary.duplicates), (total, 0), "{summary}");
        assert_eq!(summary.evicted_devices, 1, "only dev-a's state was dropped: {summary}");
        assert_eq!(summary.evicted_series, 1, "only dev-a's model history was dropped: {summary}");
        // Control: state kept for ever takes the reboot for a replay.
        cfg.state_idle = 0;
        let (summary, _) = run(&cfg);
        // Every seq it sent is remembered (one run, 0–599), so all 600 are dropped as
        // duplicates; at 2 workers the other devices' seqs, read in blocks by both workers,
        // are still judged exactly (none beyond the de-duplication horizon).
        assert_eq!(summary.duplicates, 600, "{summary}");
        assert_eq!(summary.dedupe_horizon_exceeded, 0, "{summary}");
        assert_eq!((summary.evicted_devices, summary.evicted_series), (0, 0), "{summary}");
    }
}

#[test]
fn simulator_anomalies_the_rules_target_are_caught() {
    let (summary, c) = run(&config(SourceConfig::Simulator(small_sim()), 2));
    let gt = summary.ground_truth.clone().expect("simulator runs score against their labels");
    assert_eq!(gt.anomalies as usize, c.labels().len());
    assert!(gt.caught > 0 && gt.caught <= gt.anomalies);
    let labels = c.labels();
    let alerts = c.sorted_alerts();
    let fired = |rule: &str, device: &str, from: u64, to: u64| {
        alerts.iter().any(|a| {
            a.kind == AlertKind::Fired
                && &*a.key.source == rule
                && &*a.device == device
                && a.window_end > from
                && a.window_start <= to
        })
    };
    let spikes: Vec<_> =
        labels.iter().filter(|l| l.metric == "temperature" && l.kind.name() == "spike").collect();
    assert!(!spikes.is_empty(), "the seed should inject temperature spikes");
    for l in spikes {
        assert!(fired("overheat", &l.device, l.start_ms, l.end_ms), "missed spike {l:?}");
    }
    let dips: Vec<_> =
        labels.iter().filter(|l| l.metric == "temperature" && l.kind.name() == "dip").collect();
    for l in dips {
        assert!(fired("freezing", &l.device, l.start_ms, l.end_ms), "missed dip {l:?}");
    }
    // A dropout shows as a window with fewer than 5 of its 10 samples only where it covers
    // more than half of a window (a window with no samples at all is never emitted).
    let interval = 1000;
    let start = small_sim().start_ms;
    let dropouts: Vec<_> = labels.iter().filter(|l| l.kind.name() == "dropout").collect();
    for l in dropouts {
        let first = (l.start_ms - start) / 10_000 * 10_000 + start;
        let sparse = (first..l.end_ms).step_by(10_000).any(|w| {
            let present =
                (w..w + 10_000).step_by(interval).filter(|t| *t < l.start_ms || *t >= l.end_ms).count();
            present > 0 && present < 5
        });
        if sparse {
            let rule = format!("{}-silent", l.metric);
            assert!(fired(&rule, &l.device, l.start_ms, l.end_ms), "missed dropout {l:?}");
        }
    }
}

#[test]
fn rules_file_reloads_while_running() {
    let dir = tmp();
    let rules = dir.path().join("rules.toml");
    let never =
        "[[rule]]\nname = \"never\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 1000\n";
    let always =
        "[[rule]]\nname = \"always\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = -1000\n";
    std::fs::write(&rules, never).unwrap();
    // 20 devices, 10 minutes of event time paced at 300x: about 2 s of wall clock.
    let sim = SimConfig {
        devices: 20,
        span_ms: 600_000,
        realtime_speed: Some(300.0),
        anomaly_rate_per_hour: 0.0,
        ..SimConfig::default()
    };
    let start = sim.start_ms;
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Simulator(sim.clone()), workers);
        cfg.rules = Some(rules.clone());
        std::fs::write(&rules, never).unwrap();
        let handle = std::thread::spawn(move || run(&cfg));
        std::thread::sleep(Duration::from_millis(700));
        std::fs::write(&rules, always).unwrap();
        let (_, c) = handle.join().unwrap();
        let alerts = c.sorted_alerts();
        assert!(alerts.iter().all(|a| &*a.key.source == "always"), "the old rule never fires");
        let first = alerts.iter().map(|a| a.window_start).min().expect("the new rule fired");
        assert!(
            first > start + 60_000,
            "the change applies from the frontier at reload time, not from the start ({})",
            first - start
        );
        // Every device fires once: the condition holds until the end.
        assert_eq!(alerts.len(), 20, "workers {workers}");
    }
}

#[test]
fn late_events_are_counted_and_written() {
    let dir = tmp();
    let lines = vec![
        json_event("d1", "temperature", 10_000, 20.0, 0),
        json_event("d1", "temperature", 20_000, 20.0, 1),
        json_event("d1", "temperature", 5_000, 99.0, 2), // late by 15 s
        json_event("d1", "temperature", 21_000, 20.0, 3),
    ];
    let path = write_lines(dir.path(), "late.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 1);
    cfg.late_events = Some(dir.path().join("late-out.jsonl"));
    let (summary, c) = run(&cfg);
    assert_eq!((summary.records_in, summary.late, summary.processed), (4, 1, 3));
    assert!(summary.balanced());
    let late = c.late_events();
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].event.ts, late[0].watermark), (5_000, 20_000));
    let written = std::fs::read_to_string(dir.path().join("late-out.jsonl")).unwrap();
    assert!(written.contains(r#""device":"d1""#) && written.contains(r#""ts":5000"#), "{written}");
    // With 15 s of allowed lateness it is on time.
    cfg.lateness = 15_000;
    cfg.late_events = None;
    let (summary, _) = run(&cfg);
    assert_eq!(summary.late, 0);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let dir = tmp();
    let mut lines: Vec<String> =
        (0..100).map(|i| json_event("d1", "temperature", i * 1000, 20.0, i)).collect();
    lines.extend((50..100).map(|i| json_event("d1", "temperature", i * 1000, 20.0, i)));
    let path = write_lines(dir.path(), "dups.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 2);
    cfg.lateness = 100_000;
    let (summary, _) = run(&cfg);
    assert_eq!((summary.records_in, summary.duplicates, summary.processed), (150, 50, 100));
}

#[test]
fn alert_file_is_effectively_once_across_reruns() {
    let dir = tmp();
    let out = dir.path().join("alerts.jsonl");
    let mut cfg = config(SourceConfig::Simulator(small_sim()), 2);
    cfg.alerts = AlertOutput::File(out.clone());
    let (first, _) = run(&cfg);
    let written = std::fs::read_to_string(&out).unwrap();
    let n = written.lines().count() as u64;
    assert_eq!(n, first.alerts());
    assert!(n > 0);
    // A replay of the same input writes nothing new.
    let (second, _) = run(&cfg);
    assert_eq!(second.alerts_deduplicated, n);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count() as u64, n);
    for line in written.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with(v["device"].as_str().unwrap()));
        assert!(v["kind"] == "fired" || v["kind"] == "cleared");
    }
}

#[test]
fn device_metadata_is_joined_into_alerts() {
    let dir = tmp();
    let rules = write_file(
        dir.path(),
        "rules.toml",
        "[[rule]]\nname='hot'\nmetric='temperature'\nfield='max'\nop='>'\nvalue=50\n\n[[device]]\nname='d1'\nsite='plant-a'\nowner='ops'\n",
    );
    let lines: Vec<String> = (0..30)
        .map(|i| json_event(if i % 2 == 0 { "d1" } else { "d2" }, "temperature", i * 1000, 60.0, i))
        .collect();
    let path = write_lines(dir.path(), "m.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 2);
    cfg.rules = Some(rules);
    let (_, c) = run(&cfg);
    let alerts = c.sorted_alerts();
    assert_eq!(alerts.len(), 2);
    let d1 = alerts.iter().find(|a| &*a.device == "d1").unwrap();
    assert_eq!((d1.site.as_deref(), d1.owner.as_deref()), (Some("plant-a"), Some("ops")));
    let d2 = alerts.iter().find(|a| &*a.device == "d2").unwrap();
    assert_eq!(d2.site, None);
}

#[test]
fn duration_limit_stops_a_paced_run() {
    let sim = SimConfig { devices: 5, span_ms: 3_600_000, realtime_speed: Some(1.0), ..SimConfig::default() };
    let mut cfg = config(SourceConfig::Simulator(sim), 2);
    cfg.duration = Some(300);
    let t = std::time::Instant::now();
    let (summary, _) = run(&cfg);
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert!(summary.stopped_early);
    assert!(summary.balanced());
}

#[test]
fn anomaly_model_file_is_reloaded_while_running() {
    let dir = tmp();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/artifacts");
    std::fs::copy(shipped.join("student-int8.bpk"), dir.path().join("m.bpk")).unwrap();
    std::fs::copy(shipped.join("student-int8.json"), dir.path().join("m.json")).unwrap();
    let card = dir.path().join("m.json");
    // 10 quiet temperature sensors, 10 minutes of event time paced at 300x (about 2 s).
    let sim = SimConfig {
        devices: 10,
        span_ms: 600_000,
        metrics: vec!["temperature".into()],
        realtime_speed: Some(300.0),
        anomaly_rate_per_hour: 0.0,
        ..SimConfig::default()
    };
    let start = sim.start_ms;
    let mut cfg = config(SourceConfig::Simulator(sim), 2);
    cfg.model = card.display().to_string();
    let handle = std::thread::spawn(move || run(&cfg));
    std::thread::sleep(Duration::from_millis(700));
    // Swap in a model that calls everything anomalous, under a new name.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    v["threshold"] = serde_json::json!(0.0);
    v["name"] = serde_json::json!("swapped");
    std::fs::write(&card, serde_json::to_string(&v).unwrap()).unwrap();
    let (_, c) = handle.join().unwrap();
    let swapped: Vec<_> = c.sorted_alerts().into_iter().filter(|a| &*a.key.source == "swapped").collect();
    assert_eq!(swapped.len(), 10, "each sensor fires once under the swapped model: {swapped:?}");
    let first = swapped.iter().map(|a| a.window_start).min().unwrap();
    assert!(first > start + 60_000, "the new model applies from the reload on ({} ms in)", first - start);
}

/// Rules with `early` set as given: temperature `max > 38`, `min < 5` and humidity `count >= 10`.
fn early_rules(dir: &std::path::Path, early: bool) -> std::path::PathBuf {
    let text = format!(
        "[[rule]]\nname='overheat'\nmetric='temperature'\nfield='max'\nop='>'\nvalue=38\nhysteresis=3\nearly={early}\n\n\
         [[rule]]\nname='freezing'\nmetric='temperature'\nfield='min'\nop='<'\nvalue=5\nhysteresis=3\nearly={early}\n\n\
         [[rule]]\nname='full'\nmetric='humidity'\nfield='count'\nop='>='\nvalue=10\nearly={early}\n"
    );
    write_file(dir, &format!("rules-{early}.toml"), &text)
}

#[test]
fn early_rules_make_the_same_alerts_as_at_the_window_end_at_1_and_2_workers() {
    let dir = tmp();
    let ids_of = |c: &sensorflow::Collected| c.sorted_alerts().iter().map(|a| a.id()).collect::<Vec<_>>();
    let mut reference: Option<Vec<String>> = None;
    let mut runs = Vec::new();
    // Replayed as fast as possible at 1 and 2 workers, and paced (600× real time) at 2 workers,
    // where readings arrive while their window is open.
    for (workers, early, paced) in
        [(1, false, false), (1, true, false), (2, false, false), (2, true, false), (2, true, true)]
    {
        let sim = SimConfig { realtime_speed: paced.then_some(600.0), ..small_sim() };
        let mut cfg = config(SourceConfig::Simulator(sim), workers);
        cfg.model = "none".into();
        cfg.rules = Some(early_rules(dir.path(), early));
        let (_, c) = run(&cfg);
        let alerts = c.sorted_alerts();
        let early_alerts: Vec<_> = alerts.iter().filter(|a| a.early_at.is_some()).collect();
        for a in &early_alerts {
            let at = a.early_at.unwrap();
            assert!(early, "early alert from a rule without early: {a:?}");
            assert_eq!(a.kind, AlertKind::Fired);
            assert!(a.window_start <= at && at < a.window_end, "{a:?}");
        }
        let ids = ids_of(&c);
        match &reference {
            None => {
                assert!(ids.len() >= 30, "the rules should alert: {}", ids.len());
                reference = Some(ids);
            }
            Some(r) => assert_eq!(&ids, r, "workers {workers}, early {early}, paced {paced}"),
        }
        runs.push((paced, early_alerts.len()));
    }
    let (_, paced_early) = runs[4];
    assert!(paced_early > 0, "a paced run should fire some alerts before their window ends: {runs:?}");

    // Waiting early alerts must not stall flow control: the smallest in-flight bound, with
    // per-device event time (whose frontier trails the newest readings by the spread).
    let mut cfg = config(SourceConfig::Simulator(small_sim()), 2);
    cfg.model = "none".into();
    cfg.rules = Some(early_rules(dir.path(), true));
    cfg.max_in_flight = 1024;
    cfg.event_time = sensorflow::config::EventTime::Device;
    cfg.device_spread = 600_000;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(&cfg));
    });
    let (_, c) = rx.recv_timeout(Duration::from_secs(120)).expect("the run should end, not stall");
    assert_eq!(ids_of(&c), reference.unwrap_or_default());
}

#[test]
fn early_is_refused_for_a_condition_a_filling_window_can_undo() {
    let dir = tmp();
    for (field, op) in [("mean", ">"), ("max", "<"), ("count", "<")] {
        let text = format!(
            "[[rule]]\nname='r'\nmetric='temperature'\nfield='{field}'\nop='{op}'\nvalue=5\nearly=true\n"
        );
        let path = write_file(dir.path(), "bad.toml", &text);
        let err = sensorflow::config::rules::load_rules(&path).unwrap_err().to_string();
        assert!(err.contains("early"), "{field} {op}: {err}");
    }
    let text =
        "[[rule]]\nname='r'\nmetric='t'\nfield='max'\nop='>'\nvalue=5\nmin_duration='10s'\nearly=true\n";
    let path = write_file(dir.path(), "bad.toml", text);
    assert!(sensorflow::config::rules::load_rules(&path).is_err());
}
