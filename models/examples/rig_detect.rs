//! Design harness: the statistical device detector over a rig seed set, as a benchmark table
//! (what `sensorflow rig detect` prints, without building the engine).
//! `cargo run --release -p sensorflow-models --example rig_detect -- design '{"hold_rows": 5}'`
//! (the JSON overrides [`DeviceConfig`] fields; the warm-up is each run's own).

use sensorflow_models::device::{rig_benchmark, DeviceConfig};
use sensorflow_models::synth::rigs::SeedSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let set: SeedSet = args.next().unwrap_or_else(|| "design".into()).parse()?;
    let cfg: DeviceConfig = match args.next() {
        Some(json) => serde_json::from_str(&json)?,
        None => DeviceConfig::default(),
    };
    println!("{}", rig_benchmark(&cfg, set.seeds())?);
    Ok(())
}
