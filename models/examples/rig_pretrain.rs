//! Design experiment (issue 14): does the statistical device model improve when its
//! regressions are fitted on more normal data of the same rig than one run's warm-up? Each
//! evaluated run is preceded by the fault-free runs of `train` seeds of the same shape, all
//! taken as warm-up; the run is then scored as usual.
//! `cargo run --release -p sensorflow-models --example rig_pretrain -- 101,102,103,104 105,106,107,108 '{}'`

use sensorflow_models::device::{DeviceConfig, DeviceModel, RowState};
use sensorflow_models::rows::run_detector;
use sensorflow_models::synth::rigs::RigRun;

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
    let table = run_detector(&eval, "statistical, pre-fitted", |run| {
        let pre: Vec<RigRun> = train.iter().map(|&s| RigRun::generate_fault_free(run.shape, s)).collect();
        let pre_rows: usize = pre.iter().map(|r| r.rows.len()).sum();
        let cfg = DeviceConfig { warmup_rows: pre_rows + run.warmup_rows, ..cfg.clone() };
        let mut model = DeviceModel::new(run.sensors.len(), run.interval_ms, &cfg).expect("config");
        for r in &pre {
            for row in &r.rows {
                model.push(&row.values, false);
            }
        }
        run.rows.iter().map(|row| model.push(&row.values, false).state == RowState::Open).collect()
    })?;
    println!("{table}");
    Ok(())
}
