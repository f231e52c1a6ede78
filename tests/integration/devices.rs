//! The device model in the engine (issue 14): rows of every metric of a device per window,
//! scored by `--device-model statistical`, with episodes and a score file.

use std::path::Path;

use sensorflow::connectors::SourceConfig;
use sensorflow_models::synth::SplitMix64;
use sensorflow_operators::{AlertKind, DEVICE_MODEL_SOURCE};

use crate::common::*;

const ROWS: u64 = 7000;
const T0: u64 = 1_700_000_000_000;

/// Four devices of three related metrics (`b = 2a + 5`, `c = 10 − a`, noise σ 0.1), one
/// reading per metric per second; on `dev-1` and `dev-3`, `b` reads 3.0 high on rows
/// 4000..6000 (a persistent fault, 30σ of the noise).
fn write_devices(path: &Path) {
    write_fleet(path, 100, true);
}

/// [`write_devices`]' fleet with its own noise seeds (`seed..seed + 4`), with or without the
/// faults; a seed other than 100 also shifts the shared driver `a` by `seed` rows, so a model
/// trained on one fleet meets other values of the driver's history in another (the relations
/// are the same).
fn write_fleet(path: &Path, seed: u64, faults: bool) {
    let shift = if seed == 100 { 0.0 } else { seed as f64 };
    let mut lines = Vec::new();
    let mut rngs: Vec<SplitMix64> = (0..4).map(|d| SplitMix64::new(seed + d)).collect();
    let mut seqs = [0u64; 4];
    // In time order: a file ordered per device would make most of it late.
    for i in 0..ROWS {
        let t = i as f64 + shift;
        let a = 10.0 * (t / 70.0).sin() + 3.0 * (t / 17.0).cos();
        for (d, (rng, seq)) in rngs.iter_mut().zip(seqs.iter_mut()).enumerate() {
            let fault = faults && d % 2 == 1 && (4000..6000).contains(&i);
            let values = [
                a + 0.1 * rng.normal(),
                2.0 * a + 5.0 + if fault { 3.0 } else { 0.0 } + 0.1 * rng.normal(),
                10.0 - a + 0.1 * rng.normal(),
            ];
            for (metric, v) in ["a", "b", "c"].iter().zip(values) {
                let ts = T0 + i * 1000 + 10;
                lines.push(json_event(&format!("dev-{d}"), metric, ts, (v * 1e4).round() / 1e4, *seq));
                *seq += 1;
            }
        }
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn device_config(path: &Path, workers: usize) -> sensorflow::config::RunConfig {
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.to_path_buf()] }, workers);
    cfg.window = 1000;
    cfg.lateness = 5_000;
    cfg.model = "none".into();
    cfg.device_model = "statistical".into();
    cfg.device_warmup = 2000;
    cfg
}

#[test]
fn a_persistent_fault_keeps_one_device_episode_open_until_it_ends_at_1_and_2_workers() {
    let dir = tmp();
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    check_one_episode_per_fault(&data, "statistical");
}

/// Trains the learned device model (quick chain) on a fault-free recording of the fleet with
/// other noise seeds; the card of its int8 student.
fn train_learned(dir: &Path) -> std::path::PathBuf {
    use sensorflow::tools::train::{train_rows, TrainRows};
    use sensorflow_models::device::learned::ChainOptions;
    let normal = dir.join("normal.jsonl");
    write_fleet(&normal, 500, false);
    let chain = ChainOptions { max_samples: 100_000, ..ChainOptions::default() };
    let opts = TrainRows {
        inputs: vec![normal],
        format: None,
        interval_ms: 1000,
        labels: Vec::new(),
        dir: dir.join("model"),
        name: "fleet".into(),
        chain,
    };
    let mut steps = Vec::new();
    let out = train_rows(&opts, &mut |r| {
        eprintln!("{r:?}");
        steps.push(r.step.clone())
    })
    .expect("training");
    assert_eq!(steps, ["teacher", "student", "student-pruned", "student-int8"], "a report row per step");
    assert_eq!(out.metrics, ["a", "b", "c"]);
    assert_eq!(out.recordings, 4, "one recording per device");
    assert_eq!(out.rows as u64, 4 * ROWS);
    let int8 = out.report.iter().find(|r| r.step == "student-int8").expect("int8 row");
    let student = out.report.iter().find(|r| r.step == "student").expect("student row");
    assert!(int8.bytes * 10 < student.bytes * 4, "int8 file {} B against {} B", int8.bytes, student.bytes);
    // The relations are linear with noise σ 0.1 against deviations of about 7–15: a model
    // that learned them predicts each metric within a few percent of its deviation.
    assert!(student.rmse < 0.1, "validation RMSE {} deviations", student.rmse);
    let card = out.cards.last().expect("cards").clone();
    assert!(card.ends_with("fleet-student-int8.json"), "{}", card.display());
    card
}

#[test]
fn train_data_gives_a_card_that_run_loads_and_that_keeps_one_episode_per_fault_at_1_and_2_workers() {
    let dir = tmp();
    let card = train_learned(dir.path());
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    check_one_episode_per_fault(&data, card.to_str().expect("utf-8 path"));
}

#[test]
fn train_data_leaves_out_the_rows_a_labels_file_marks_and_still_finds_the_fault() {
    use sensorflow::tools::train::{train_rows, TrainRows};
    use sensorflow_models::device::learned::ChainOptions;
    let dir = tmp();
    // The training recording itself holds the fault on dev-1 and dev-3; the labels mark its
    // rows (for every device of the file), so it is not learned as normal.
    let faulty = dir.path().join("faulty.jsonl");
    write_fleet(&faulty, 700, true);
    let labels = dir.path().join("labels.csv");
    let mut text = String::from("ts,label\n");
    for i in 0..ROWS {
        text.push_str(&format!("{},{}\n", T0 + i * 1000, u8::from((4000..6000).contains(&i))));
    }
    std::fs::write(&labels, text).unwrap();
    let chain = ChainOptions { max_samples: 100_000, ..ChainOptions::default() };
    let opts = TrainRows {
        inputs: vec![faulty],
        format: None,
        interval_ms: 1000,
        labels: vec![labels],
        dir: dir.path().join("model"),
        name: "labelled".into(),
        chain,
    };
    let out = train_rows(&opts, &mut |_| {}).expect("training");
    assert_eq!(out.excluded, 4 * 2000, "the labelled rows of every device are left out");
    let card = out.cards.last().expect("cards").clone();
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    check_one_episode_per_fault(&data, card.to_str().expect("utf-8 path"));

    // Labels that do not parse are a clear error naming the file and the line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "ts,label\n1,0\n2,maybe\n").unwrap();
    let opts = TrainRows { labels: vec![bad.clone()], ..opts };
    let err = train_rows(&opts, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("bad.csv") && err.contains("line 3") && err.contains("maybe"), "{err}");
    // Two labels files for one data file, a file of one metric, a truncated file, an interval of 0.
    let two = TrainRows { labels: vec![bad.clone(), bad], ..opts.clone() };
    let err = train_rows(&two, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("2 labels files for 1 data files"), "{err}");
    let single = dir.path().join("single.jsonl");
    std::fs::write(&single, json_event("d", "a", T0, 1.0, 0) + "\n").unwrap();
    let one = TrainRows { inputs: vec![single], labels: Vec::new(), ..opts.clone() };
    let err = train_rows(&one, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("at least 2 metrics"), "{err}");
    let cut = dir.path().join("cut.jsonl");
    let mut text = std::fs::read(dir.path().join("faulty.jsonl")).unwrap();
    text.truncate(text.len() * 3 / 10 + 7); // mid-line: the last line is a dead letter
    std::fs::write(&cut, text).unwrap();
    let truncated = TrainRows { inputs: vec![cut], labels: Vec::new(), ..opts.clone() };
    let out = train_rows(&truncated, &mut |_| {}).expect("a truncated file still trains on its whole lines");
    assert_eq!(out.metrics, ["a", "b", "c"]);
    let zero = TrainRows { interval_ms: 0, ..opts };
    let err = train_rows(&zero, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("interval 0 ms"), "{err}");
}

#[test]
fn a_learned_card_for_another_row_interval_or_a_broken_card_is_a_clear_error() {
    let dir = tmp();
    let card = train_learned(dir.path());
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    let mut cfg = device_config(&data, 1);
    cfg.device_model = card.to_str().unwrap().into();
    cfg.window = 2000;
    let err = sensorflow::engine::run_collect(&cfg).map(|_| ()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("1000 ms apart") && msg.contains("2000 ms"), "{msg}");

    let text = std::fs::read_to_string(&card).unwrap();
    for (what, broken, expected) in [
        ("format", text.replacen("\"format\": 1", "\"format\": 9", 1), "format 9"),
        ("deviation", text.replacen("\"std\": [", "\"std\": [0.0, ", 1), "3 metrics but"),
        ("json", text[..text.len() / 2].to_string(), "EOF"),
    ] {
        std::fs::write(&card, broken).unwrap();
        let mut cfg = device_config(&data, 1);
        cfg.device_model = card.to_str().unwrap().into();
        let err = sensorflow::engine::run_collect(&cfg).map(|_| ()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expected) && msg.contains("fleet-student-int8.json"), "{what}: {msg}");
    }
}

/// The fleet's faulty devices each get one episode (fired on the fault's start, cleared after
/// its end, naming `b`) and the healthy ones none, with the same alerts at 1 and 2 workers.
fn check_one_episode_per_fault(data: &Path, device_model: &str) {
    let mut views = Vec::new();
    for workers in [1, 2] {
        let mut cfg = device_config(data, workers);
        cfg.device_model = device_model.into();
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        let alerts: Vec<_> =
            c.sorted_alerts().into_iter().filter(|a| a.key.source.as_ref() == DEVICE_MODEL_SOURCE).collect();
        for d in 0..4 {
            let name = format!("dev-{d}");
            let mine: Vec<_> = alerts.iter().filter(|a| a.device.as_ref() == name).collect();
            if d % 2 == 0 {
                assert!(mine.is_empty(), "{name} is healthy: {mine:?}");
                continue;
            }
            assert_eq!(mine.len(), 2, "{name}: one fired, one cleared: {mine:?}");
            let fired = mine.iter().find(|a| a.kind == AlertKind::Fired).expect("fired");
            let cleared = mine.iter().find(|a| a.kind == AlertKind::Cleared).expect("cleared");
            let row = |ts: u64| (ts - T0) / 1000;
            assert!((4000..4030).contains(&row(fired.window_start)), "{fired:?}");
            // Cleared once the long smoothing (60 rows) has let go of the fault and the hold
            // (10 rows) has passed: well within the 2,000 rows the fault lasted.
            assert!((6000..6200).contains(&row(cleared.window_start)), "{cleared:?}");
            assert_eq!(fired.key, cleared.key);
            assert_eq!(fired.metric.as_ref(), "b", "the faulty metric is named: {fired:?}");
        }
        views.push(alert_view(&c));
    }
    assert_eq!(views[0], views[1], "the same alerts at 1 and 2 workers");
}

#[test]
fn scores_file_has_one_row_per_device_and_window_with_its_state() {
    let dir = tmp();
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    let scores = dir.path().join("scores.csv");
    let mut cfg = device_config(&data, 2);
    cfg.scores = Some(scores.clone());
    run(&cfg);
    let text = std::fs::read_to_string(&scores).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("device,ts,score,state"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, 4 * ROWS, "one row per device and window");
    let state = |device: &str, row: u64| {
        let ts = (T0 + row * 1000).to_string();
        rows.iter().find(|r| r[0] == device && r[1] == ts).map(|r| r[3]).expect("a row")
    };
    assert_eq!(state("dev-1", 100), "warm-up");
    assert_eq!(state("dev-1", 3000), "normal");
    assert_eq!(state("dev-1", 5000), "open");
    assert_eq!(state("dev-0", 5000), "normal");
    let score: f64 =
        rows.iter().find(|r| r[0] == "dev-1" && r[3] == "open").map(|r| r[2].parse().unwrap()).unwrap();
    assert!(score.is_finite());
}

#[test]
fn scores_without_a_device_model_is_a_clear_error() {
    let dir = tmp();
    let out = sensorflow()
        .args([
            "run",
            "--devices",
            "5",
            "--span",
            "1m",
            "--alerts",
            "none",
            "--device-model",
            "none",
            "--scores",
        ])
        .arg(dir.path().join("s.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("device model"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The overall row of `evaluate --rows LABELS --scores SCORES`, as its cells.
fn evaluate_scores(labels: &Path, scores: &Path) -> Vec<String> {
    let os = |s: &str| std::ffi::OsString::from(s);
    evaluate_rows(&[
        os("--rows").as_os_str(),
        labels.as_os_str(),
        os("--scores").as_os_str(),
        scores.as_os_str(),
    ])
}

/// The overall row of an `evaluate --rows` table, as its cells.
fn evaluate_rows(args: &[&std::ffi::OsStr]) -> Vec<String> {
    let out = sensorflow().arg("evaluate").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().last().expect("a table row").to_string();
    line.split('|').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

#[test]
fn a_rig_run_through_the_engine_scores_the_same_from_its_alerts_and_its_scores() {
    let dir = tmp();
    let data = dir.path().join("c.jsonl");
    let labels = dir.path().join("c.labels.json");
    let out = sensorflow()
        .args(["rig", "write", "--rig", "compressor", "--seed", "102", "-o"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (alerts, scores) = (dir.path().join("a.jsonl"), dir.path().join("s.csv"));
    let out = sensorflow()
        .args(["run", "--source", "jsonl", "--input"])
        .arg(&data)
        .args([
            "--window",
            "10s",
            "--model",
            "none",
            "--device-model",
            "statistical",
            "--device-warmup",
            "3456",
        ])
        .args(["--workers", "2", "-q", "--alerts"])
        .arg(&alerts)
        .arg("--scores")
        .arg(&scores)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let os = |s: &str| std::ffi::OsString::from(s);
    let from_alerts = evaluate_rows(&[
        os("--rows").as_os_str(),
        labels.as_os_str(),
        os("--alerts").as_os_str(),
        alerts.as_os_str(),
        os("--rule").as_os_str(),
        os(DEVICE_MODEL_SOURCE).as_os_str(),
    ]);
    let from_scores = evaluate_scores(&labels, &scores);
    assert_eq!(from_alerts, from_scores);
    // | rows | anomalous | precision | recall | F1 | FAR | events detected | delay |
    assert_eq!(from_alerts[0], (17_280 - 3456).to_string(), "every row after the warm-up is scored");
    let far: f64 = from_alerts[5].parse().unwrap();
    let detected: Vec<u32> = from_alerts[6].split(" / ").map(|n| n.parse().unwrap()).collect();
    assert!(far < 0.5 && detected[0] > 0, "{from_alerts:?}");
}

/// What a user gets with no model flag: a pump (a device type the binary ships a learned
/// model for) is scored by that model, with its default warm-up, and its faults are found;
/// the same alerts at 1 and 2 workers. Seed 107 is a design seed of the rig benchmark.
#[test]
fn a_run_with_no_model_flag_scores_a_pump_with_the_shipped_learned_model_at_1_and_2_workers() {
    use std::collections::BTreeMap;

    let dir = tmp();
    let data = dir.path().join("pump.jsonl");
    let labels = dir.path().join("pump.labels.json");
    let out = sensorflow()
        .args(["rig", "write", "--rig", "pump", "--seed", "107", "-o"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut views = Vec::new();
    for workers in [1, 2] {
        let scores = dir.path().join(format!("s{workers}.csv"));
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![data.clone()] }, workers);
        cfg.window = 1000;
        cfg.model = "none".into();
        cfg.scores = Some(scores.clone());
        assert_eq!(cfg.device_model, "default", "the device model is on by default");
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!(
            summary.device_models,
            BTreeMap::from([("pump-student-int8".to_string(), 1)]),
            "{summary}"
        );
        assert_eq!(summary.device_rows_scored, 36_000, "one row per second of the 10-hour run");
        let row = evaluate_scores(&labels, &scores);
        // | rows | anomalous | precision | recall | F1 | FAR | events detected | delay |
        let (f1, far): (f64, f64) = (row[4].parse().unwrap(), row[5].parse().unwrap());
        let detected: Vec<u32> = row[6].split(" / ").map(|n| n.parse().unwrap()).collect();
        assert!(f1 >= 0.5 && far <= 0.06 && detected[0] >= 6, "{row:?}");
        let episodes =
            c.sorted_alerts().iter().filter(|a| a.key.source.as_ref() == DEVICE_MODEL_SOURCE).count();
        assert!(episodes >= 6, "{episodes} device-model alerts");
        views.push(alert_view(&c));
    }
    assert_eq!(views[0], views[1], "the same alerts at 1 and 2 workers");
}

/// Devices of a type no shipped model fits (the simulator's: temperature, humidity,
/// vibration) get the statistical device model by default, one per device.
#[test]
fn a_run_with_no_model_flag_gives_other_devices_of_several_metrics_the_statistical_model() {
    let mut cfg = config(SourceConfig::Simulator(Default::default()), 2);
    if let SourceConfig::Simulator(sim) = &mut cfg.source {
        (sim.devices, sim.span_ms) = (7, 60_000);
    }
    let (summary, _) = run(&cfg);
    assert_eq!(summary.device_models.get("statistical"), Some(&7), "{summary}");
    assert_eq!(summary.device_models.len(), 1, "{summary}");
    // 10-s windows: 6 rows per device in a minute.
    assert_eq!(summary.device_rows_scored, 7 * 6, "{summary}");
}

/// `train --data` reads every recorded format the engine reads: a rig run as a wide CSV with
/// its `label` column, and the same run recorded into a binary log give the same rows,
/// metrics and left-out incidents; the card runs in the engine on another run of the rig,
/// finding its faults, with the same alerts at 1 and 2 workers.
#[test]
fn train_data_reads_a_wide_csv_with_labels_and_a_binary_log_alike_and_the_card_finds_a_rigs_faults() {
    use sensorflow::tools::record::record;
    use sensorflow::tools::train::{train_rows, TrainRows};
    use sensorflow_models::device::learned::ChainOptions;
    use sensorflow_models::synth::rigs::{RigRun, RigShape};

    let dir = tmp();
    let rig = RigRun::generate(RigShape::Compressor, 101);
    let csv = dir.path().join("compressor-101.csv");
    rig.save(&csv, None).unwrap();
    let log = dir.path().join("compressor-101.sflog");
    record(&SourceConfig::Csv { paths: vec![csv.clone()] }, &log, None).unwrap();
    let labelled = rig.labels().iter().filter(|&&l| l).count();
    assert!(labelled > 300, "the run has faults to leave out ({labelled} rows)");

    let train = |input: &Path, name: &str| {
        let opts = TrainRows {
            inputs: vec![input.to_path_buf()],
            format: None,
            interval_ms: rig.interval_ms,
            labels: Vec::new(),
            dir: dir.path().join("model"),
            name: name.into(),
            chain: ChainOptions { max_samples: 60_000, ..ChainOptions::default() },
        };
        train_rows(&opts, &mut |_| {}).expect("training")
    };
    let from_csv = train(&csv, "csv");
    let from_log = train(&log, "log");
    let mut sensors: Vec<String> = rig.sensors.iter().map(|s| s.to_string()).collect();
    sensors.sort();
    for out in [&from_csv, &from_log] {
        assert_eq!(out.metrics, sensors, "the label column is not a metric");
        assert_eq!(out.rows, rig.rows.len());
        assert_eq!(out.excluded, labelled, "the rows the label column marks are left out");
        assert_eq!(out.recordings, 1);
    }

    // Another run of the same rig, scored by the engine with the card from the log.
    let other = RigRun::generate(RigShape::Compressor, 102);
    let data = dir.path().join("compressor-102.csv");
    other.save(&data, None).unwrap();
    let card = from_log.cards.last().expect("cards").to_str().expect("utf-8").to_string();
    let mut views = Vec::new();
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Csv { paths: vec![data.clone()] }, workers);
        cfg.window = other.interval_ms;
        cfg.model = "none".into();
        cfg.device_model = card.clone();
        cfg.device_warmup = other.warmup_rows;
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        let fired: Vec<_> = c
            .sorted_alerts()
            .into_iter()
            .filter(|a| a.key.source.as_ref() == DEVICE_MODEL_SOURCE && a.kind == AlertKind::Fired)
            .collect();
        // Episodes that open inside a labelled fault: at least a third of the faults.
        let row = |ts: u64| ((ts - other.rows[0].ts_ms) / other.interval_ms) as usize;
        let inside = fired
            .iter()
            .filter(|a| other.rows.get(row(a.window_start)).is_some_and(|r| r.anomalous()))
            .count();
        let faults = other.faults.iter().filter(|f| f.start_row >= other.warmup_rows).count();
        assert!(inside * 3 >= faults, "{inside} episodes inside faults, of {faults} faults: {fired:?}");
        views.push(alert_view(&c));
    }
    assert_eq!(views[0], views[1], "the same alerts at 1 and 2 workers");
}

#[test]
fn a_warm_up_in_event_time_is_that_many_window_hops_of_rows_and_too_short_a_one_is_refused() {
    let dir = tmp();
    let data = dir.path().join("devices.jsonl");
    write_devices(&data);
    let rows = device_config(&data, 1);
    assert_eq!(rows.device_warmup, 2000);
    let mut time = device_config(&data, 2);
    time.device_warmup = 1800; // overridden
    time.device_warmup_time = Some(2000 * 1000);
    assert_eq!(time.device_warmup_rows().unwrap(), 2000);
    let (_, a) = run(&rows);
    let (_, b) = run(&time);
    let fired = alert_view(&a).iter().filter(|(id, _)| id.ends_with("/fired")).count();
    assert_eq!(fired, 2, "one episode per faulty device: {:?}", alert_view(&a));
    assert_eq!(alert_view(&a), alert_view(&b), "2,000 s of 1 s windows is the same warm-up as 2,000 rows");

    let mut short = device_config(&data, 1);
    short.device_warmup_time = Some(10_000);
    let err = sensorflow::engine::run_collect(&short).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("10000 ms is 10 rows of 1000 ms"), "{err}");
}
