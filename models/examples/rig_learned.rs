//! Design harness (issue 14, item 3): the learned device model on the rig benchmark. For
//! each rig shape, the row-model chain (teacher → distilled student → pruned → int8) is
//! trained on the runs of the `train` seeds (their fault rows excluded, as a user's labels
//! would), and every step is then run as the device model's prior on the `eval` seeds, each
//! run with its own warm-up.
//! `cargo run --release -p sensorflow-models --example rig_learned -- 101,102,103,104 105,106,107,108 '{}' [epochs]`

use std::sync::Arc;

use sensorflow_models::device::learned::{run_chain, ChainOptions, Recording, RowData, RowPrior};
use sensorflow_models::device::{DeviceConfig, DeviceModel, RowState};
use sensorflow_models::rows::run_detector;
use sensorflow_models::synth::rigs::{RigRun, RigShape};

fn seeds(s: &str) -> Vec<u64> {
    s.split(',').filter_map(|x| x.parse().ok()).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let train = seeds(&args.next().unwrap_or_else(|| "101,102,103,104".into()));
    let eval = seeds(&args.next().unwrap_or_else(|| "105,106,107,108".into()));
    let cfg: DeviceConfig = match args.next() {
        Some(json) => serde_json::from_str(&json)?,
        None => DeviceConfig::default(),
    };
    let mut opts = ChainOptions::default();
    if let Some(e) = args.next() {
        opts.train.epochs = e.parse()?;
    }
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(h) = env("SF_HIDDEN") {
        opts.hidden = h as usize;
    }
    if let Some(s) = env("SF_SPARSITY") {
        opts.sparsity = (s / 2.0, s);
    }
    if let Some(lr) = env("SF_LR") {
        opts.train.lr = lr;
    }
    if let Some(m) = env("SF_SAMPLES") {
        opts.max_samples = m as usize;
    }
    if let Some(a) = env("SF_ALPHA") {
        opts.alpha = a;
    }
    if let Some(w) = env("SF_WEIGHTED") {
        opts.weighted = w > 0.0;
    }
    let steps = ["teacher", "student", "student-pruned", "student-int8"];
    let mut priors: Vec<Vec<Arc<RowPrior>>> = Vec::new();
    for shape in RigShape::ALL {
        let runs: Vec<RigRun> = train.iter().map(|&s| RigRun::generate(shape, s)).collect();
        let recordings: Vec<Recording> = runs
            .iter()
            .map(|r| Recording {
                rows: r.rows.iter().map(|row| row.values.clone()).collect(),
                exclude: r.rows.iter().map(|row| row.anomalous()).collect(),
            })
            .collect();
        let names: Vec<String> = runs[0].sensors.iter().map(|s| s.to_string()).collect();
        let data =
            RowData::build(&recordings, &names, runs[0].interval_ms, &cfg.ema_seconds, opts.max_samples)?;
        eprintln!(
            "{}: {} training samples, {} validation; noise ÷ deviation {:?}",
            shape.name(),
            data.train.len(),
            data.valid.len(),
            data.noise
                .iter()
                .zip(&data.schema.std)
                .map(|(a, b)| (a / b * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
        let chain = run_chain(&data, &opts, &mut |row| {
            let ratio: Vec<f64> = row
                .residual_sd
                .iter()
                .zip(&data.noise)
                .map(|(r, n)| (r / n * 100.0).round() / 100.0)
                .collect();
            eprintln!(
                "  {}: params {}, non-zero {}, {} B, validation RMSE {:.4}, {:.0} rows/s; residual ÷ noise {ratio:?}",
                row.step, row.params, row.nonzero, row.bytes, row.rmse, row.rows_per_s
            )
        });
        let mut p = vec![Arc::new(RowPrior::from_teacher(chain.schema.clone(), &chain.teacher)?)];
        for (_, s) in &chain.students {
            p.push(Arc::new(RowPrior::from_student(chain.schema.clone(), s)?));
        }
        priors.push(p);
    }
    for (k, step) in steps.iter().enumerate() {
        let table = run_detector(&eval, &format!("learned {step}"), |run| {
            let prior = priors[run.shape as usize][k].clone();
            let cfg = DeviceConfig { warmup_rows: run.warmup_rows, ..cfg.clone() };
            let mut model = DeviceModel::with_prior(prior, &cfg).expect("config");
            run.rows.iter().map(|row| model.push(&row.values, false).state == RowState::Open).collect()
        })?;
        println!("{table}");
    }
    Ok(())
}
