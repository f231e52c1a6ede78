//! Design diagnostics: the device detector's episodes on one rig run (design seeds only).
//! `cargo run --release -p sensorflow-models --example rig_diag -- pump 101 '{}'`

use sensorflow_models::device::{DeviceConfig, DeviceModel, RowState, Transition};
use sensorflow_models::synth::rigs::{RigRun, RigShape, DESIGN_SEEDS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let shape: RigShape = args.next().unwrap_or_else(|| "pump".into()).parse()?;
    let seed: u64 = args.next().unwrap_or_else(|| "101".into()).parse()?;
    assert!(DESIGN_SEEDS.contains(&seed), "diagnostics on design seeds only");
    let cfg: DeviceConfig = match args.next() {
        Some(json) => serde_json::from_str(&json)?,
        None => DeviceConfig::default(),
    };
    let run = RigRun::generate(shape, seed);
    let cfg = DeviceConfig { warmup_rows: run.warmup_rows, ..cfg };
    let mut model = DeviceModel::new(run.sensors.len(), run.interval_ms, &cfg)?;
    println!("warm-up {} rows of {}", run.warmup_rows, run.rows.len());
    for f in &run.faults {
        let names: Vec<_> = f.sensors.iter().map(|&j| run.sensors[j]).collect();
        println!(
            "fault {:?} rows {}..{} {:?} size {:?}",
            f.kind, f.start_row, f.end_row, names, f.size_sigma
        );
    }
    let mut open = None;
    let mut max_score: f64 = 0.0;
    let mut normal_scores = Vec::new();
    let mut reasons = std::collections::BTreeMap::new();
    for (i, row) in run.rows.iter().enumerate() {
        let out = model.push(&row.values, false);
        if i == run.warmup_rows {
            println!("threshold {:.2}", model.threshold());
            for (j, (s, a, b)) in model.calibration().iter().enumerate() {
                println!(
                    "  {:>18} noise {:.4} residual σ {:.4} sd short {:.3} long {:.3}",
                    run.sensors[j], run.noise[j], s, a, b
                );
            }
        }
        if let Some(r) = out.reason {
            *reasons.entry(format!("{r:?}")).or_insert(0usize) += 1;
        }
        if i >= run.warmup_rows && row.fault.is_none() {
            normal_scores.push(out.score);
        }
        if out.state == RowState::Open {
            max_score = max_score.max(out.score);
        }
        match out.transition {
            Some(Transition::Fired { top }) => {
                let names: Vec<_> = top.iter().map(|&j| run.sensors[j]).collect();
                open = Some((i, names, row.fault));
                max_score = out.score;
            }
            Some(Transition::Cleared { rows }) => {
                if let Some((s, names, fault)) = open.take() {
                    println!(
                        "episode {s}..{i} ({rows} rows) fault at start {fault:?} max {max_score:.1} {names:?} {:?}",
                        out.reason
                    );
                }
            }
            None => {}
        }
    }
    println!("abnormal rows by reason: {reasons:?}");
    normal_scores.sort_by(f64::total_cmp);
    let q = |p: f64| normal_scores[((normal_scores.len() - 1) as f64 * p) as usize];
    println!(
        "normal-row scores: q50 {:.2} q90 {:.2} q95 {:.2} q99 {:.2} share < adapt_below(0.5): {:.2}",
        q(0.5),
        q(0.9),
        q(0.95),
        q(0.99),
        normal_scores.iter().filter(|&&s| s < 0.5).count() as f64 / normal_scores.len() as f64
    );
    if let Some((s, names, fault)) = open {
        println!("episode {s}..end fault at start {fault:?} {names:?}");
    }
    Ok(())
}
