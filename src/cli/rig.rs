//! `sensorflow rig`: the multivariate rig benchmark (device-level detection, issue 14). `write`
//! saves one labelled run as a wide CSV plus its labels; `baselines` scores the naive baselines
//! and `detect` the statistical device detector per row on a seed set (design seeds for
//! choosing, held-out seeds for quoting only).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sensorflow_models::device::{rig_benchmark, DeviceConfig};
use sensorflow_models::rows::{run_baseline, Baseline};
use sensorflow_models::synth::rigs::{RigRun, RigShape, SeedSet};

/// `sensorflow rig`.
#[derive(Debug, Args)]
pub struct RigArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RigAction,
}

/// `sensorflow rig write|detect|baselines`.
#[derive(Debug, Subcommand)]
pub enum RigAction {
    /// Write one rig run as a wide CSV (`ts,<sensor>...,label`, empty cells for missing
    /// values), or as narrow JSON lines for a `.jsonl` name (one event per reading, device
    /// `<rig>-<seed>`, what `run --source jsonl` reads), and its labels (warm-up, faults,
    /// sensors) as JSON.
    Write {
        /// The rig: pump, hvac, line or compressor.
        #[arg(long)]
        rig: String,
        /// The run's seed.
        #[arg(long, default_value_t = 101)]
        seed: u64,
        /// The file to write (`.jsonl`: narrow JSON lines; otherwise the wide CSV).
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// The labels file (default: beside the CSV, `<name>.labels.json`).
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Score the statistical device detector per row over every rig and seed of a set.
    Detect {
        /// The seed set: `design` or `held-out` (held-out figures are for quoting only).
        #[arg(long, default_value = "design")]
        seeds: String,
        /// A JSON file of device-detector settings overriding the defaults (the warm-up is
        /// each run's own).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Score a naive baseline per row over every rig and seed of a set.
    Baselines {
        /// The seed set: `design` or `held-out` (held-out figures are for quoting only).
        #[arg(long, default_value = "design")]
        seeds: String,
        /// The baseline: `zscore` (per sensor, warm-up statistics) or `all` (every row).
        #[arg(long, default_value = "zscore")]
        baseline: String,
    },
}

/// Runs `sensorflow rig`.
pub fn rig(args: RigArgs) -> Result<()> {
    match args.action {
        RigAction::Write { rig, seed, out, labels } => {
            let shape: RigShape = rig.parse()?;
            let labels = labels.unwrap_or_else(|| sensorflow::tools::simulate::labels_path_for(&out));
            let run = RigRun::generate(shape, seed);
            run.save(&out, Some(&labels)).with_context(|| format!("writing the {rig} run"))?;
            eprintln!(
                "wrote {} rows of {} sensors ({} faults) to {} and labels to {}",
                run.rows.len(),
                run.sensors.len(),
                run.faults.len(),
                out.display(),
                labels.display()
            );
            Ok(())
        }
        RigAction::Detect { seeds, config } => {
            let set: SeedSet = seeds.parse()?;
            let cfg: DeviceConfig = match config {
                None => DeviceConfig::default(),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{}: not device-detector settings", path.display()))?
                }
            };
            println!("{}", rig_benchmark(&cfg, set.seeds())?);
            Ok(())
        }
        RigAction::Baselines { seeds, baseline } => {
            let set: SeedSet = seeds.parse()?;
            let baseline: Baseline = baseline.parse()?;
            println!("{}", run_baseline(&baseline, set.seeds())?);
            Ok(())
        }
    }
}
