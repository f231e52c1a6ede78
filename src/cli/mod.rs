//! The command line: clap types only, one file per subcommand group, each ending in
//! `into_config()` (a plain validated config); [`dispatch`] runs one command. `run` holds
//! `run`, `replay` and `record` (and the simulator and broker flags they share), `models` the
//! model steps and `evaluate`, `rig` the multivariate rig benchmark, `tools` `simulate`, `bridge`, `bench` and `cluster`. For a run,
//! flags override the `--config` file, which overrides built-in defaults.

pub mod models;
pub mod rig;
pub mod run;
pub mod tools;

use anyhow::Result;
use clap::{Parser, Subcommand};

use models::{EvaluateArgs, ModelArgs, Step};
use rig::RigArgs;
use run::{RecordArgs, ReplayArgs, RunArgs};
use tools::{BenchArgs, BridgeArgs, ClusterArgs, SimulateArgs};

/// Event-time stream processing for IoT sensor telemetry.
#[derive(Debug, Parser)]
#[command(name = "sensorflow", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline: source → de-duplicate → windows → threshold rules → alerts.
    /// With no arguments: the simulator (1,000 devices, seed 42, 10 minutes of event time)
    /// through 10 s windows, the built-in rules and the shipped anomaly model; alerts on
    /// stdout, summary on stderr.
    Run(Box<RunArgs>),
    /// Write the simulator's output as a labelled dataset (JSON lines or CSV + labels JSON),
    /// or publish it to MQTT or Kafka (`--to`).
    Simulate(SimulateArgs),
    /// Forward an MQTT subscription to a Kafka topic, at least once.
    Bridge(BridgeArgs),
    /// Write any source's events to a binary log (checksummed abomonation chunks).
    Record(Box<RecordArgs>),
    /// Replay a binary log through the pipeline (`run --source log --input FILE`).
    Replay(Box<ReplayArgs>),
    /// Run the benchmark workloads (W1 log, W2 JSON, W3 JSON + model, L latency) on
    /// generated data; prints a table and writes JSON.
    Bench(BenchArgs),
    /// Start a local cluster: P processes on loopback running the command after `--`, output
    /// forwarded; if one process fails, the others are stopped.
    Cluster(ClusterArgs),
    /// Train the teacher network on synthetic data (step 1 of `optimize`); with `--data`,
    /// train the learned device model on your own recorded normal data and run its whole
    /// chain (teacher, distilled student, pruned, int8).
    Train(models::TrainArgs),
    /// Distil the teacher into the small student (step 2).
    Distill(ModelArgs),
    /// Prune the student by magnitude while fine-tuning (step 3).
    Prune(ModelArgs),
    /// Quantize the pruned student to int8 (step 4).
    Quantize(ModelArgs),
    /// Run every model step in order and print the optimization report.
    Optimize(ModelArgs),
    /// The multivariate rig benchmark: write a labelled run, score the naive baselines or the
    /// statistical device detector.
    Rig(RigArgs),
    /// Score a model (or any detector's NAB result files) on the NAB corpus.
    Evaluate(EvaluateArgs),
}

/// Runs one command.
pub fn dispatch(cli: Cli) -> Result<()> {
    // Runs install logging once their config (which may name an OTLP endpoint) is known.
    let _logging = match &cli.command {
        Command::Run(_) | Command::Replay(_) => None,
        _ => Some(sensorflow::observe::logging::init(None)?),
    };
    match cli.command {
        Command::Run(args) => run::run(args.into_config()?),
        Command::Replay(args) => run::run(args.into_config()?),
        Command::Record(args) => run::record(args.into_config()?),
        Command::Simulate(args) => tools::simulate(args.into_config()?),
        Command::Bridge(args) => tools::bridge(args.into_config()),
        Command::Bench(args) => tools::bench(args.into_config()?),
        Command::Cluster(args) => tools::cluster(args.into_config()?),
        Command::Train(args) if !args.data.is_empty() => models::train_rows(args),
        Command::Train(args) => models::step(Step::Train, &args.model.into_config()),
        Command::Distill(args) => models::step(Step::Distill, &args.into_config()),
        Command::Prune(args) => models::step(Step::Prune, &args.into_config()),
        Command::Quantize(args) => models::step(Step::Quantize, &args.into_config()),
        Command::Optimize(args) => models::step(Step::Optimize, &args.into_config()),
        Command::Rig(args) => rig::rig(args),
        Command::Evaluate(args) if args.rows.is_some() => models::evaluate_rows(&args),
        Command::Evaluate(args) => Ok(sensorflow::tools::evaluate::evaluate(&args.into_config()?)?),
    }
}

/// timely is fail-stop: when a peer process disappears, its network threads panic with
/// "timely communication error". Turn that into a clear message and a prompt exit (3) instead
/// of workers waiting forever for data that will not come.
pub fn fail_stop_on_lost_peers() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("timely communication error") {
            eprintln!("sensorflow: error: lost the connection to a peer process ({msg}); stopping");
            std::process::exit(3);
        }
        default(info);
    }));
}
