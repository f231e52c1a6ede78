//! Speed of the device model alone: rows of 8 metrics for 10,000 devices, one thread,
//! interleaved by device as the engine feeds them (each device's rows in time order). The
//! statistical model, or with a learned row-model card of 8 metrics (as `sensorflow train
//! --data` writes) the learned one.
//! `cargo run --release -p sensorflow-models --example device_speed [DEVICES] [ROWS] [CARD]`

use std::time::Instant;

use sensorflow_models::device::learned::load_row_prior;
use sensorflow_models::device::{DeviceConfig, DeviceModel};
use sensorflow_models::synth::SplitMix64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let rows: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let card = args.next();
    let cfg = DeviceConfig { warmup_rows: 200, ..DeviceConfig::default() };
    let prior = card.map(|c| load_row_prior(std::path::Path::new(&c))).transpose()?;
    if let Some(p) = &prior {
        if p.metrics() != 8 {
            return Err(format!("the card has {} metrics; this benchmark feeds 8", p.metrics()).into());
        }
    }
    let mut models: Vec<DeviceModel> = (0..devices)
        .map(|_| match &prior {
            Some(p) => DeviceModel::with_prior(p.clone(), &cfg),
            None => DeviceModel::new(8, 1000, &cfg),
        })
        .collect::<Result<_, _>>()?;
    let mut rng = SplitMix64::new(1);
    let mut row = vec![None; 8];
    let (mut warm, mut live) = (0.0, 0.0);
    let mut open = 0u64;
    for i in 0..rows {
        let started = Instant::now();
        for m in models.iter_mut() {
            let a = (i as f64 / 50.0).sin();
            for (j, v) in row.iter_mut().enumerate() {
                *v = Some(a * (j + 1) as f64 + 0.1 * rng.normal());
            }
            open += u64::from(m.push(&row, false).score > 1.0);
        }
        let t = started.elapsed().as_secs_f64();
        if i < cfg.warmup_rows {
            warm += t
        } else {
            live += t
        }
    }
    let live_rows = (devices * (rows - cfg.warmup_rows)) as f64;
    println!(
        "{} model, {devices} devices × 8 metrics: warm-up {:.2} M rows/s, live {:.2} M rows/s (one thread; {open} abnormal rows)",
        if prior.is_some() { "learned" } else { "statistical" },
        (devices * cfg.warmup_rows) as f64 / warm / 1e6,
        live_rows / live / 1e6
    );
    Ok(())
}
