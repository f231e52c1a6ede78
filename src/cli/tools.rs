//! The tool commands: `simulate`, `bridge`, `bench` and `cluster`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};

use sensorflow::config::duration::parse_ms;
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::tools::bench::{run_bench, BenchConfig, Workload};
use sensorflow::tools::bridge::{run_bridge, BridgeConfig};
use sensorflow::tools::cluster::{run_cluster, ClusterConfig, ClusterExit};
use sensorflow::tools::simulate::{labels_path_for, simulate_to, Format, Output};

use super::run::{BrokerArgs, SimArgs};

/// Where `simulate` sends events.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum SimTarget {
    /// A dataset file (`--out`).
    File,
    /// An MQTT broker (`--broker`, `--topic-template`).
    Mqtt,
    /// A Kafka topic (`--broker`, `--topic`).
    Kafka,
}

/// `sensorflow simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Dataset file to write (`.csv` for CSV, anything else for JSON lines).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Where to send the events.
    #[arg(long, value_enum, default_value = "file")]
    pub to: SimTarget,
    /// Broker settings for `--to mqtt|kafka`.
    #[command(flatten)]
    pub net: BrokerArgs,
    /// Partitions for a Kafka topic that does not exist yet.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Offered rate, events per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Ground-truth labels file (default: beside the dataset, `<name>.labels.json`;
    /// `labels.json` when publishing).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Stop after this many events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Pace in real time, times this factor.
    #[arg(long)]
    pub realtime: Option<f64>,
    /// Simulator settings.
    #[command(flatten)]
    pub sim: SimArgs,
}

/// What `simulate` does: the arguments of [`simulate_to`].
#[derive(Debug)]
pub struct SimulateConfig {
    /// The simulator.
    pub sim: SimConfig,
    /// Where the events go.
    pub output: Output,
    /// The ground-truth labels file.
    pub labels: PathBuf,
    /// Stop after this many events.
    pub events: Option<u64>,
    /// Offered rate, events per second.
    pub rate: Option<f64>,
}

impl SimulateArgs {
    /// The simulator, the output `--to` names (with its required flags) and the labels file.
    pub fn into_config(self) -> Result<SimulateConfig> {
        let mut sim = SimConfig::default();
        self.sim.apply(&mut sim);
        sim.realtime_speed = self.realtime;
        let (output, labels) = match self.to {
            SimTarget::File => {
                let out = self.out.context("simulate --to file needs --out FILE")?;
                let labels = self.labels.unwrap_or_else(|| labels_path_for(&out));
                (Output::File { format: Format::from_path(&out), path: out }, labels)
            }
            SimTarget::Mqtt => {
                let broker = self.net.broker.context("simulate --to mqtt needs --broker")?;
                let template = self.net.topic_template.unwrap_or_else(|| "sensors/{device}/{metric}".into());
                (Output::Mqtt { broker, template }, self.labels.unwrap_or("labels.json".into()))
            }
            SimTarget::Kafka => {
                let brokers = self.net.broker.context("simulate --to kafka needs --broker")?;
                let topic = self.net.topic.unwrap_or_else(|| "sensors".into());
                let out = Output::Kafka { brokers, topic, partitions: self.partitions };
                (out, self.labels.unwrap_or("labels.json".into()))
            }
        };
        Ok(SimulateConfig { sim, output, labels, events: self.events, rate: self.rate })
    }
}

/// `simulate`, and one line saying what was written where.
pub fn simulate(c: SimulateConfig) -> Result<()> {
    let started = Instant::now();
    let written = simulate_to(&c.sim, &c.output, &c.labels, c.events, c.rate)?;
    let secs = started.elapsed().as_secs_f64();
    let target = match &c.output {
        Output::File { path, .. } => format!("to {}", path.display()),
        Output::Mqtt { broker, .. } => format!("to mqtt://{broker}"),
        Output::Kafka { brokers, topic, .. } => format!("to kafka://{brokers}/{topic}"),
    };
    eprintln!(
        "wrote {} events {target} in {secs:.1} s ({:.0}/s) and {} labelled anomalies to {}",
        written.events,
        written.events as f64 / secs.max(1e-9),
        written.labels.len(),
        written.labels_path.display()
    );
    Ok(())
}

/// `sensorflow bridge`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// MQTT broker `host:port`.
    #[arg(long)]
    pub mqtt: String,
    /// MQTT topic filter.
    #[arg(long, default_value = "sensors/#")]
    pub filter: String,
    /// MQTT topic pattern naming device and metric, e.g. `sensors/{device}/{metric}`.
    #[arg(long)]
    pub topic_template: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub kafka: String,
    /// Kafka topic.
    #[arg(long, default_value = "sensors")]
    pub topic: String,
    /// Partitions for the topic if it does not exist.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// MQTT client id (names the persistent session).
    #[arg(long, default_value = "sensorflow-bridge")]
    pub client_id: String,
    /// Most messages on their way to Kafka at once (the MQTT broker holds the rest).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_in_flight: u64,
    /// How long the Kafka producer waits to fill a request (0 sends each message at once;
    /// longer batches cost less CPU per message). At most 1s.
    #[arg(long, value_parser = parse_linger, default_value = "20ms")]
    pub linger: u64,
    /// Dead-letter file (JSON lines).
    #[arg(long)]
    pub dead_letters: Option<PathBuf>,
    /// Exit once nothing has arrived for this long (e.g. 5s).
    #[arg(long, value_parser = parse_ms)]
    pub until_idle: Option<u64>,
}

fn parse_linger(s: &str) -> Result<u64, String> {
    let ms = parse_ms(s)?;
    if ms > 1000 {
        return Err(format!("linger must be at most 1s, got {ms} ms"));
    }
    Ok(ms)
}

impl BridgeArgs {
    /// The bridge configuration.
    pub fn into_config(self) -> BridgeConfig {
        let mut cfg = BridgeConfig::new(&self.mqtt, &self.filter, &self.kafka, &self.topic);
        cfg.template = self.topic_template;
        cfg.partitions = self.partitions;
        cfg.client_id = self.client_id;
        cfg.max_in_flight = usize::try_from(self.max_in_flight).unwrap_or(usize::MAX);
        cfg.dead_letters = self.dead_letters;
        cfg.until_idle = self.until_idle.map(Duration::from_millis);
        cfg.linger = Duration::from_millis(self.linger);
        cfg
    }
}

/// `bridge` until it stops, then its counters.
pub fn bridge(cfg: BridgeConfig) -> Result<()> {
    let stats = run_bridge(&cfg, Arc::new(AtomicBool::new(false)))?;
    eprintln!("bridge: {stats}");
    Ok(())
}

/// `sensorflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads: w1, w2, w3, storm, cluster, l, m (comma-separated; storm: the W2 pipeline on
    /// data where a quarter of the windows alert; cluster: W1 and W2 at 2 processes × 1 worker
    /// beside 1 × 2; m: peak memory with --events devices, at most 3 M; none of the three is in
    /// the default set).
    #[arg(long, value_delimiter = ',', default_value = "w1,w2,w3,l")]
    pub workloads: Vec<String>,
    /// Events per W run (the limits hold the input in memory: about 2 GB per 20 M events).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Worker counts to run each W workload at.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Runs of each W configuration, engine and limit each (the table shows the median).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Seed of the W reference data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Offered rates for L, events/s.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub rates: Vec<u64>,
    /// Seconds per L rate.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// L: simulator tick, ms (each tick's samples arrive together).
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Where generated datasets are kept.
    #[arg(long, default_value = "target/bench-data")]
    pub dir: PathBuf,
    /// JSON result file.
    #[arg(long, default_value = "target/bench-results/sensorflow-bench.json")]
    pub out: PathBuf,
}

impl BenchArgs {
    /// The benchmark configuration; every workload name must be known.
    pub fn into_config(self) -> Result<BenchConfig> {
        let workloads = self
            .workloads
            .iter()
            .map(|w| match Workload::from_name(w) {
                Some(w) => Ok(w),
                None => bail!("unknown workload {w:?} (w1, w2, w3, storm, l, m)"),
            })
            .collect::<Result<_>>()?;
        ensure!((1..=100).contains(&self.repeat), "--repeat must be 1 to 100, got {}", self.repeat);
        Ok(BenchConfig {
            workloads,
            events: self.events,
            workers: self.workers,
            repeat: self.repeat,
            seed: self.seed,
            rates: self.rates,
            secs: self.secs,
            tick_ms: self.tick_ms,
            dir: self.dir,
            out: self.out,
        })
    }
}

/// `bench`, and where the results went.
pub fn bench(config: BenchConfig) -> Result<()> {
    run_bench(&config)?;
    eprintln!("results written to {}", config.out.display());
    Ok(())
}

/// `sensorflow cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Processes to start.
    #[arg(long, default_value_t = 2)]
    pub processes: usize,
    /// Worker threads per process.
    #[arg(long, short = 'w', default_value_t = 1)]
    pub workers: usize,
    /// Write the processes' counts summed (JSON) to this file (they are printed on stderr
    /// either way).
    #[arg(long, value_name = "FILE")]
    pub counts_json: Option<PathBuf>,
    /// The command each process runs (`run ...` or `replay ...`); cluster flags are added.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

impl ClusterArgs {
    /// The cluster configuration, run by this same executable.
    pub fn into_config(self) -> Result<ClusterConfig> {
        ensure!(self.processes >= 1, "--processes must be at least 1");
        ensure!(
            matches!(self.command.first().map(String::as_str), Some("run" | "replay")),
            "the command after -- must be `run ...` or `replay ...`"
        );
        ensure!(
            !self.command.iter().any(|a| a == "--counts-json" || a.starts_with("--counts-json=")),
            "give --counts-json to cluster itself (before --): each process writes its own, and the \
             cluster writes them summed"
        );
        let exe = std::env::current_exe().context("finding the sensorflow executable")?;
        Ok(ClusterConfig {
            processes: self.processes,
            workers: self.workers,
            exe,
            command: self.command,
            counts_json: self.counts_json,
        })
    }
}

/// `cluster`: fails if one of its processes did.
pub fn cluster(config: ClusterConfig) -> Result<()> {
    match run_cluster(&config)? {
        ClusterExit::Success => Ok(()),
        ClusterExit::Failed { process, status } => {
            bail!("process {process} failed ({status}); stopped the others")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_refuses_an_unknown_workload_before_running_any() {
        let args = BenchArgs {
            workloads: vec!["w1".into(), "w9".into()],
            events: 1,
            workers: vec![1],
            repeat: 1,
            seed: 42,
            rates: vec![1],
            secs: 1,
            tick_ms: 1,
            dir: "d".into(),
            out: "o.json".into(),
        };
        let e = args.into_config().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, r#"unknown workload "w9" (w1, w2, w3, storm, l, m)"#);
    }

    #[test]
    fn cluster_runs_only_run_or_replay() {
        let args = |p: usize, c: &str| ClusterArgs {
            processes: p,
            workers: 1,
            counts_json: None,
            command: vec![c.into()],
        };
        assert!(args(2, "run").into_config().is_ok());
        assert!(args(2, "replay").into_config().is_ok());
        assert!(args(2, "bench").into_config().is_err());
        assert!(args(0, "run").into_config().is_err());
    }
}
