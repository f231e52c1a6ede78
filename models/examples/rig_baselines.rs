//! The rig benchmark's naive baselines (issue 14) on one seed set:
//! `cargo run --release -p sensorflow-models --example rig_baselines -- [design|held-out]`
//! (default `design`). Held-out figures are for EXPERIMENTS.md only, never for choosing.

use sensorflow_models::rows::{run_baseline, Baseline};
use sensorflow_models::synth::rigs::{RigShape, SeedSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let set: SeedSet = std::env::args().nth(1).as_deref().unwrap_or("design").parse()?;
    println!("seed set {}: {:?}\n", set.name(), set.seeds());
    for shape in RigShape::ALL {
        let s = shape.spec();
        println!(
            "{}: {} sensors, {} s, {} rows, {} faults per run",
            s.name,
            s.sensors.len(),
            s.interval_ms / 1000,
            s.rows,
            s.faults
        );
    }
    for baseline in [Baseline::zscore(), Baseline::AllAnomalous] {
        println!("\n{}", run_baseline(&baseline, set.seeds())?);
    }
    Ok(())
}
