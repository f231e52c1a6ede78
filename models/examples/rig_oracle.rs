//! Design diagnostic: the ceiling of residual-smoothing detection on the rig benchmark. An
//! *oracle* knows every sensor's fault-free reading, so its residual is the fault's effect
//! plus fresh white noise of the sensor's σ (what a perfect model of the physics would
//! leave); it smooths that residual with an EWMA of `span` rows, flags a row when any
//! sensor's smoothed residual exceeds `k` white-noise deviations, holds a flag for `hold`
//! rows, and is told stuck and dropout faults outright. No real detector can beat it by more
//! than luck, so its per-row F1 bounds what the smoothing family can reach on these seeds.
//! `cargo run --release -p sensorflow-models --example rig_oracle -- design 30 4 10`

use sensorflow_models::rows::run_detector;
use sensorflow_models::synth::rigs::{FaultKind, RigRun, SeedSet};
use sensorflow_models::synth::SplitMix64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let set: SeedSet = args.next().unwrap_or_else(|| "design".into()).parse()?;
    let span: f64 = args.next().unwrap_or_else(|| "30".into()).parse()?;
    let k: f64 = args.next().unwrap_or_else(|| "4".into()).parse()?;
    let hold: usize = args.next().unwrap_or_else(|| "10".into()).parse()?;
    let alpha = 2.0 / (span + 1.0);
    let sd = (alpha / (2.0 - alpha)).sqrt();
    let table = run_detector(set.seeds(), &format!("oracle span {span} k {k} hold {hold}"), |run| {
        let clean = RigRun::generate_fault_free(run.shape, run.seed);
        let mut rng = SplitMix64::new(run.seed ^ 0x5eed);
        let mut m = vec![0.0; run.sensors.len()];
        let mut held = 0usize;
        run.rows
            .iter()
            .zip(&clean.rows)
            .map(|(row, ff)| {
                let told = row
                    .fault
                    .is_some_and(|f| matches!(run.faults[f].kind, FaultKind::Stuck | FaultKind::Dropout));
                let mut hit = told;
                for (j, mj) in m.iter_mut().enumerate() {
                    let e = match (row.values[j], ff.values[j]) {
                        (Some(o), Some(c)) => (o - c) / run.noise[j] + rng.normal(),
                        _ => rng.normal(),
                    };
                    *mj += alpha * (e - *mj);
                    hit |= mj.abs() > k * sd;
                }
                if hit {
                    held = hold;
                    true
                } else if held > 0 {
                    held -= 1;
                    true
                } else {
                    false
                }
            })
            .collect()
    })?;
    println!("{table}");
    Ok(())
}
