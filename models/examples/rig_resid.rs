//! Design diagnostic: how far the device model's residuals are from the sensor noise on the
//! normal rows after the warm-up (design seeds only), per rig and metric: RMS of the
//! residual in units of the sensor's noise σ (1.0 is a perfect model).
//! `cargo run --release -p sensorflow-models --example rig_resid -- '{"cell_dims":3}'`

use sensorflow_models::device::{DeviceConfig, DeviceModel};
use sensorflow_models::synth::rigs::{RigRun, RigShape, DESIGN_SEEDS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg: DeviceConfig = match std::env::args().nth(1) {
        Some(json) => serde_json::from_str(&json)?,
        None => DeviceConfig::default(),
    };
    for shape in RigShape::ALL {
        let mut sums: Vec<(f64, f64)> = Vec::new();
        let mut names = Vec::new();
        let mut cells = 0;
        let (mut new_ground, mut live) = (0usize, 0usize);
        for seed in DESIGN_SEEDS {
            let run = RigRun::generate(shape, seed);
            let cfg = DeviceConfig { warmup_rows: run.warmup_rows, ..cfg.clone() };
            let mut model = DeviceModel::new(run.sensors.len(), run.interval_ms, &cfg)?;
            sums.resize(run.sensors.len(), (0.0, 0.0));
            names = run.sensors.clone();
            for (i, row) in run.rows.iter().enumerate() {
                model.push(&row.values, false);
                if i < run.warmup_rows || row.fault.is_some() {
                    continue;
                }
                live += 1;
                new_ground += usize::from(model.on_new_ground());
                let sigma = model.calibration();
                for (j, r) in model.residuals().iter().enumerate() {
                    if let Some(r) = r {
                        let e = r * sigma[j].0 / run.noise[j];
                        sums[j].0 += e * e;
                        sums[j].1 += 1.0;
                    }
                }
            }
            cells += model.cells();
        }
        let rms: Vec<String> = names
            .iter()
            .zip(&sums)
            .map(|(n, (s, c))| format!("{n} {:.2}", (s / c.max(1.0)).sqrt()))
            .collect();
        println!(
            "{} (cells {}, new ground {:.1} % of normal rows): {}",
            shape.name(),
            cells / DESIGN_SEEDS.len(),
            100.0 * new_ground as f64 / live.max(1) as f64,
            rms.join(", ")
        );
    }
    Ok(())
}
