//! The rig benchmark (issue 14): generator properties, per-row scoring on hand-made numbers,
//! and the baselines. Everything here runs on the design seeds; held-out seeds are used only
//! by `examples/rig_baselines.rs`, once, for the figures in EXPERIMENTS.md.
#![allow(clippy::unwrap_used)]

use sensorflow_models::rows::{events, run_baseline, Baseline, EventCounts, RowCounts};
use sensorflow_models::synth::rigs::{
    benchmark, FaultClass, FaultKind, RigRun, RigShape, DESIGN_SEEDS, HELD_OUT_SEEDS,
};

#[test]
fn same_seed_same_rows_other_seed_differs() {
    for shape in RigShape::ALL {
        let a = RigRun::generate(shape, DESIGN_SEEDS[0]);
        let b = RigRun::generate(shape, DESIGN_SEEDS[0]);
        let c = RigRun::generate(shape, DESIGN_SEEDS[1]);
        assert_eq!(a, b, "{shape:?}");
        let differing = a.rows.iter().zip(&c.rows).filter(|(x, y)| x.values != y.values).count();
        assert!(differing > a.rows.len() * 9 / 10, "{shape:?}: only {differing} rows differ");
        assert_ne!(a.faults, c.faults, "{shape:?}");
    }
}

#[test]
fn seed_sets_are_disjoint() {
    assert!(DESIGN_SEEDS.iter().all(|s| !HELD_OUT_SEEDS.contains(s)));
    assert_eq!(HELD_OUT_SEEDS.len(), 16);
}

#[test]
fn shapes_have_4_to_20_sensors_and_different_intervals() {
    let mut intervals = Vec::new();
    for shape in RigShape::ALL {
        let run = RigRun::generate(shape, DESIGN_SEEDS[2]);
        let n = run.sensors.len();
        assert!((4..=20).contains(&n), "{shape:?}: {n} sensors");
        assert!(run.rows.iter().all(|r| r.values.len() == n));
        assert!(run.rows.windows(2).all(|w| w[1].ts_ms - w[0].ts_ms == run.interval_ms));
        assert_eq!(shape.name().parse::<RigShape>().unwrap(), shape);
        intervals.push(run.interval_ms);
    }
    intervals.sort_unstable();
    intervals.dedup();
    assert_eq!(intervals.len(), 4, "{intervals:?}");
    assert!("boiler".parse::<RigShape>().is_err());
}

#[test]
fn warmup_is_normal_and_faults_last_minutes() {
    for run in benchmark(&DESIGN_SEEDS) {
        let w = run.warmup_rows;
        let minutes = |rows: usize| rows as f64 * run.interval_ms as f64 / 60_000.0;
        assert!(w >= run.rows.len() / 5 && minutes(w) >= 30.0, "{:?}: warm-up {w}", run.shape);
        assert!(run.rows[..w].iter().all(|r| r.fault.is_none() && r.values.iter().all(Option::is_some)));
        assert!(!run.faults.is_empty());
        for (i, f) in run.faults.iter().enumerate() {
            assert!(f.start_row >= w && f.end_row <= run.rows.len());
            assert!(f.len() >= 2 && (1.9..=120.5).contains(&minutes(f.len())), "{f:?}");
            // The labels say exactly which rows are in which fault.
            let labelled = run.rows.iter().filter(|r| r.fault == Some(i)).count();
            assert_eq!(labelled, f.len());
            assert!((f.start_row..f.end_row).all(|r| run.rows[r].fault == Some(i)));
        }
        assert!(run.faults.windows(2).all(|p| p[0].end_row < p[1].start_row), "faults overlap or touch");
    }
}

#[test]
fn every_class_occurs_and_a_third_of_faults_stay_in_range() {
    let (mut inside, mut total) = (0, 0);
    let mut classes = std::collections::HashSet::new();
    for run in benchmark(&DESIGN_SEEDS) {
        // The warm-up range of each sensor, computed here, not by the code under test.
        let n = run.sensors.len();
        let mut lo = vec![f64::INFINITY; n];
        let mut hi = vec![f64::NEG_INFINITY; n];
        for row in &run.rows[..run.warmup_rows] {
            for j in 0..n {
                let v = row.values[j].unwrap();
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        for (f, claimed) in run.faults.iter().zip(run.in_range_faults()) {
            classes.insert(f.kind.class());
            let ok = (f.start_row..f.end_row)
                .all(|r| (0..n).all(|j| run.rows[r].values[j].is_some_and(|v| v >= lo[j] && v <= hi[j])));
            assert_eq!(ok, claimed, "{f:?}");
            inside += usize::from(ok);
            total += 1;
        }
    }
    assert_eq!(classes.len(), 4, "{classes:?}");
    assert!(3 * inside >= total, "only {inside} of {total} faults stay inside the warm-up ranges");
}

/// Largest |faulty − fault-free| over a fault's rows and affected sensors, in σ (`None` for a
/// dropout, which has no values).
fn measured_size(run: &RigRun, clean: &RigRun, fault: usize) -> Option<f64> {
    let f = &run.faults[fault];
    let mut largest = None;
    for r in f.start_row..f.end_row {
        for &j in &f.sensors {
            if let (Some(a), Some(b)) = (run.rows[r].values[j], clean.rows[r].values[j]) {
                let d = (a - b).abs() / run.noise[j];
                largest = Some(largest.map_or(d, |m: f64| m.max(d)));
            }
        }
    }
    largest
}

#[test]
fn faults_touch_only_their_rows_and_many_are_within_two_sigma() {
    let (mut small, mut sized) = (0, 0);
    for shape in RigShape::ALL {
        for &seed in &DESIGN_SEEDS[..4] {
            let run = RigRun::generate(shape, seed);
            let clean = RigRun::generate_fault_free(shape, seed);
            assert!(clean.faults.is_empty() && clean.rows.iter().all(|r| r.fault.is_none()));
            for (r, c) in run.rows.iter().zip(&clean.rows) {
                if r.fault.is_none() {
                    assert_eq!(
                        r.values, c.values,
                        "{shape:?} {seed}: a normal row differs from the fault-free run"
                    );
                }
            }
            for (i, f) in run.faults.iter().enumerate() {
                let Some(m) = measured_size(&run, &clean, i) else {
                    assert_eq!(f.kind, FaultKind::Dropout);
                    continue;
                };
                if let Some(size) = f.size_sigma {
                    // Additive kinds reach their stated size (up to the readings' 1e-4 rounding).
                    assert!((m - size).abs() < 0.03, "{shape:?} {seed} {f:?}: measured {m}σ");
                }
                sized += 1;
                small += usize::from(m <= 2.0 + 0.03);
            }
        }
    }
    assert!(10 * small >= 4 * sized, "only {small} of {sized} faults within 2σ");
}

#[test]
fn all_anomalous_baseline_has_far_one_and_recall_one() {
    let seeds = &DESIGN_SEEDS[..2];
    let table = run_baseline(&Baseline::AllAnomalous, seeds).unwrap();
    let (mut anomalous, mut normal, mut faults) = (0u64, 0u64, 0usize);
    for run in benchmark(seeds) {
        for row in &run.rows[run.warmup_rows..] {
            if row.fault.is_some() {
                anomalous += 1;
            } else {
                normal += 1;
            }
        }
        faults += run.faults.len();
    }
    let overall = table.by_rig.last().unwrap();
    assert_eq!(overall.name, "overall");
    assert_eq!(overall.runs, 8);
    assert_eq!(overall.counts.true_pos, anomalous);
    assert_eq!(overall.counts.false_pos, normal);
    assert_eq!(overall.counts.false_neg + overall.counts.true_neg, 0);
    assert_eq!(overall.counts.false_alarm_rate(), 1.0);
    assert_eq!(overall.counts.recall(), 1.0);
    assert_eq!((overall.events.events, overall.events.detected), (faults, faults));
    assert!(overall.events.delays.iter().all(|&d| d == 0));
    let p = anomalous as f64 / (anomalous + normal) as f64;
    assert!((overall.counts.f1() - 2.0 * p / (1.0 + p)).abs() < 1e-12);
    for rig in &table.by_rig {
        assert_eq!(rig.counts.false_alarm_rate(), 1.0, "{}", rig.name);
    }
}

#[test]
fn zscore_baseline_flags_missing_values_and_far_excursions_only() {
    let run = RigRun::generate(RigShape::Hvac, DESIGN_SEEDS[0]);
    let pred = Baseline::zscore().predict(&run);
    assert_eq!(pred.len(), run.rows.len());
    for (row, &p) in run.rows.iter().zip(&pred) {
        if row.values.iter().any(Option::is_none) {
            assert!(p);
        }
    }
    // Warm-up readings are within 4σ of their own mean far more often than not.
    let flagged = pred[..run.warmup_rows].iter().filter(|&&p| p).count();
    assert!(flagged * 10 < run.warmup_rows, "{flagged} warm-up rows flagged");
    assert_eq!("zscore".parse::<Baseline>().unwrap(), Baseline::zscore());
    assert!("random".parse::<Baseline>().is_err());
}

#[test]
fn per_row_scores_match_hand_computed_numbers() {
    let t = true;
    let f = false;
    let labels = [f, f, t, t, t, f, f, t, t, f];
    let preds = [f, t, t, f, t, f, f, f, f, t];
    // TP rows 2, 4; FP rows 1, 9; FN rows 3, 7, 8; TN rows 0, 5, 6.
    let c = RowCounts::count(&labels, &preds, 0).unwrap();
    assert_eq!((c.true_pos, c.false_pos, c.false_neg, c.true_neg), (2, 2, 3, 3));
    assert_eq!(c.precision(), 0.5);
    assert_eq!(c.recall(), 0.4);
    assert!((c.f1() - 4.0 / 9.0).abs() < 1e-12);
    assert_eq!(c.false_alarm_rate(), 0.4);
    assert_eq!(c.missed_rate(), 0.6);
    // Skipping a two-row warm-up drops FP row 1 and TN row 0: P = 2/3, R = 0.4, F1 = 0.5.
    let c = RowCounts::count(&labels, &preds, 2).unwrap();
    assert_eq!((c.true_pos, c.false_pos, c.false_neg, c.true_neg), (2, 1, 3, 2));
    assert!((c.f1() - 0.5).abs() < 1e-12);
    assert!((c.false_alarm_rate() - 1.0 / 3.0).abs() < 1e-12);
    // No point adjustment: one flagged row of a three-row event is one true positive.
    let e = events(&labels, 0);
    assert_eq!(e, vec![(2, 5), (7, 9)]);
    let ev = EventCounts::count(&e, &preds);
    assert_eq!((ev.events, ev.detected, ev.delays.clone()), (2, 1, vec![0]));
    let late = [f, f, f, f, t, f, f, f, t, f];
    let ev = EventCounts::count(&e, &late);
    assert_eq!((ev.detected, ev.delays.clone(), ev.median_delay()), (2, vec![2, 1], Some(1.5)));
    // Nothing flagged: precision, recall and F1 are 0, not NaN.
    let none = RowCounts::count(&labels, &[f; 10], 0).unwrap();
    assert_eq!((none.precision(), none.recall(), none.f1()), (0.0, 0.0, 0.0));
    assert!(RowCounts::count(&labels, &preds[..9], 0).is_err());
}

#[test]
fn csv_and_labels_files_round_trip() {
    let run = RigRun::generate(RigShape::Compressor, DESIGN_SEEDS[3]);
    let dir = tempfile::tempdir().unwrap();
    let (csv, labels) = (dir.path().join("rig.csv"), dir.path().join("rig.json"));
    run.save(&csv, Some(&labels)).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), run.sensors.len() + 2);
    assert_eq!((header[0], header[header.len() - 1]), ("ts", "label"));
    let mut n = 0;
    for (line, row) in lines.zip(&run.rows) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len());
        assert_eq!(cells[0].parse::<u64>().unwrap(), row.ts_ms);
        for (cell, v) in cells[1..cells.len() - 1].iter().zip(&row.values) {
            assert_eq!(cell.parse::<f64>().ok(), *v, "{cell:?}");
        }
        assert_eq!(cells[cells.len() - 1], if row.anomalous() { "1" } else { "0" });
        n += 1;
    }
    assert_eq!(n, run.rows.len());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&labels).unwrap()).unwrap();
    assert_eq!(json["rig"], "compressor");
    assert_eq!(json["warmup_rows"], run.warmup_rows);
    assert_eq!(json["faults"].as_array().unwrap().len(), run.faults.len());
    assert!(run.faults.iter().all(|f| f.kind.class() != FaultClass::Relation || f.size_sigma.is_none()));
}
