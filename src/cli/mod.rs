//! The command line. Flags override the `--config` file, which overrides built-in defaults.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use sensorflow::config::duration::parse_ms;
use sensorflow::config::{AlertOutput, RunConfig};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::{KafkaSourceConfig, MqttSourceConfig, SourceConfig};
use sensorflow_operators::BadRecordPolicy;

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
    /// Train the teacher network on synthetic data (step 1 of `optimize`).
    Train(ModelArgs),
    /// Distil the teacher into the small student (step 2).
    Distill(ModelArgs),
    /// Prune the student by magnitude while fine-tuning (step 3).
    Prune(ModelArgs),
    /// Quantize the pruned student to int8 (step 4).
    Quantize(ModelArgs),
    /// Run every model step in order and print the optimization report.
    Optimize(ModelArgs),
    /// Score a model (or any detector's NAB result files) on the NAB corpus.
    Evaluate(EvaluateArgs),
}

/// Settings of the model steps.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Directory holding the models and the report.
    #[arg(long, default_value = "models/artifacts")]
    pub dir: PathBuf,
    /// Seed for data, initialisation and shuffles.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Student hidden units.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// NAB corpus root for the report's NAB columns (default: ../shared/datasets/nab if present).
    #[arg(long)]
    pub nab: Option<PathBuf>,
    /// Skip NAB scoring.
    #[arg(long)]
    pub no_nab: bool,
    /// Time budget per training step (e.g. 4m).
    #[arg(long, value_parser = parse_ms, default_value = "4m")]
    pub budget: u64,
    /// Small data and two epochs: a smoke test of the whole pipeline.
    #[arg(long)]
    pub quick: bool,
}

impl ModelArgs {
    /// The pipeline options.
    pub fn options(&self) -> sensorflow_models::detector::pipeline::Options {
        let mut o = sensorflow_models::detector::pipeline::Options::new(&self.dir);
        o.seed = self.seed;
        o.hidden = self.hidden;
        o.budget = std::time::Duration::from_millis(self.budget);
        o.quick = self.quick;
        o.nab = if self.no_nab { None } else { self.nab.clone().or_else(default_nab) };
        o
    }
}

/// The NAB corpus beside the checkout, if there is one.
pub fn default_nab() -> Option<PathBuf> {
    ["../shared/datasets/nab", "/work/shared/datasets/nab"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("data").is_dir())
}

/// `sensorflow evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// NAB corpus root (default: ../shared/datasets/nab if present).
    #[arg(long)]
    pub nab: Option<PathBuf>,
    /// Model directory and name to score (default: models/artifacts, student-int8).
    #[arg(long, default_value = "models/artifacts")]
    pub dir: PathBuf,
    /// Model name in the directory.
    #[arg(long, default_value = "student-int8")]
    pub model: String,
    /// Score this detector's per-row NAB result files instead (a `results/<detector>` dir).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Also write the model's per-row outputs in NAB's results layout under this directory.
    #[arg(long)]
    pub write_results: Option<PathBuf>,
    /// Episode threshold for the model's (calibrated) scores instead of the card's.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Score the synthetic NAB-like corpus (generated from this seed) instead of NAB (no NAB
    /// corpus needed).
    #[arg(long, value_name = "SEED", conflicts_with_all = ["results", "write_results", "plot"])]
    pub synthetic: Option<u64>,
    /// Calibration of the model's scores: as its card says, none, default settings, or the
    /// card's without one of its parts (to see what each contributes).
    #[arg(long, value_enum, default_value = "card")]
    pub calibration: CalibrationArg,
    /// Draw a PNG per NAB file (series, score, labelled windows) into this directory, and
    /// `report.png` from the optimization report (`--dir`/report.json) when there is one.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Also print, per file, the windows detected, false alarms and share of the raw score
    /// (standard profile at its optimal threshold), worst files first; with `--synthetic`,
    /// per injected anomaly kind, how many were detected and how many rows after the onset.
    #[arg(long)]
    pub per_file: bool,
}

/// `evaluate --calibration`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CalibrationArg {
    /// Whatever the model card says.
    Card,
    /// Raw probabilities.
    None,
    /// Per-series calibration with default settings (likelihood, records, excursion checks).
    Likelihood,
    /// The card's (or the default) calibration without its range check.
    NoRange,
    /// The card's (or the default) range check alone: the model's scores are ignored.
    RangeOnly,
    /// The card's (or the default) calibration without its excursion checks (rate and
    /// recurrence).
    NoExcursions,
}

/// Input kinds.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceKind {
    /// Built-in device simulator.
    Simulator,
    /// JSON-lines files (`--input`).
    Jsonl,
    /// CSV files with a header (`--input`).
    Csv,
    /// A NAB corpus directory (`--input`).
    Nab,
    /// A Kafka topic (`--broker`, `--topic`, `--group`).
    Kafka,
    /// An MQTT topic filter (`--broker`, `--topic`).
    Mqtt,
    /// A binary log written by `sensorflow record` (`--input FILE`, `--realtime X`).
    Log,
}

/// `sensorflow record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The log file to write.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// The source, as for `run` (default: the simulator).
    #[command(flatten)]
    pub run: RunArgs,
}

/// `sensorflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads: w1, w2, w3, l (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "w1,w2,w3,l")]
    pub workloads: Vec<String>,
    /// Events per W run.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Worker counts to run each W workload at.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
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

/// `sensorflow cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Processes to start.
    #[arg(long, default_value_t = 2)]
    pub processes: usize,
    /// Worker threads per process.
    #[arg(long, short = 'w', default_value_t = 1)]
    pub workers: usize,
    /// The command each process runs (`run ...` or `replay ...`); cluster flags are added.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `sensorflow replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The log file.
    pub file: PathBuf,
    /// Replay at event time × this factor (default: as fast as possible).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Pipeline settings, as for `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Broker settings shared by `run`, `bridge` and `simulate`.
#[derive(Debug, Args, Default)]
pub struct BrokerArgs {
    /// Broker address: Kafka bootstrap servers (`host:port[,host:port]`) or an MQTT `host:port`.
    #[arg(long)]
    pub broker: Option<String>,
    /// Kafka topic, or MQTT topic filter (wildcards allowed; default `sensors/#`).
    #[arg(long)]
    pub topic: Option<String>,
    /// MQTT topic pattern naming device and metric, e.g. `sensors/{device}/{metric}`.
    #[arg(long)]
    pub topic_template: Option<String>,
}

/// Simulator settings shared by `run` and `simulate`.
#[derive(Debug, Args, Default)]
pub struct SimArgs {
    /// Simulated devices.
    #[arg(long)]
    pub devices: Option<u64>,
    /// Simulator seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Event-time span to simulate (e.g. 10m, 1h).
    #[arg(long, value_parser = parse_ms)]
    pub span: Option<u64>,
    /// Sample interval per device and metric (e.g. 1s, 100ms).
    #[arg(long, value_parser = parse_ms)]
    pub interval: Option<u64>,
    /// Expected anomalies per series-hour.
    #[arg(long)]
    pub anomaly_rate: Option<f64>,
    /// Comma-separated metrics (temperature, humidity, vibration).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Option<Vec<String>>,
}

impl SimArgs {
    fn apply(&self, sim: &mut SimConfig) {
        if let Some(v) = self.devices {
            sim.devices = v;
        }
        if let Some(v) = self.seed {
            sim.seed = v;
        }
        if let Some(v) = self.span {
            sim.span_ms = v;
        }
        if let Some(v) = self.interval {
            sim.interval_ms = v;
        }
        if let Some(v) = self.anomaly_rate {
            sim.anomaly_rate_per_hour = v;
        }
        if let Some(v) = &self.metrics {
            sim.metrics = v.clone();
        }
    }
}

/// `sensorflow run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// TOML file with any of these settings (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Input kind.
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,
    /// Input files (jsonl, csv) or corpus directory (nab).
    #[arg(long, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Worker threads (per process).
    #[arg(long, short = 'w')]
    pub workers: Option<usize>,
    /// Processes in a timely cluster (each started with its own --process index).
    #[arg(long)]
    pub processes: Option<usize>,
    /// This process's index in the cluster, 0-based.
    #[arg(long)]
    pub process: Option<usize>,
    /// File with one host:port per process (default 127.0.0.1:2101, 2102, ...).
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
    /// Window length (e.g. 10s).
    #[arg(long, value_parser = parse_ms)]
    pub window: Option<u64>,
    /// Window hop for sliding windows (default: tumbling).
    #[arg(long, value_parser = parse_ms)]
    pub hop: Option<u64>,
    /// Allowed lateness per source partition (e.g. 2s).
    #[arg(long, value_parser = parse_ms)]
    pub lateness: Option<u64>,
    /// Quiet-partition idle timeout (e.g. 5s).
    #[arg(long, value_parser = parse_ms)]
    pub idle_timeout: Option<u64>,
    /// Rules file (TOML); reloaded when it changes.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Do not reload the rules file when it changes.
    #[arg(long)]
    pub no_reload: bool,
    /// Alert output: `stdout`, `none`, a file path (appended, de-duplicated by alert id),
    /// `kafka://host:port/topic` (keyed by alert id) or `mqtt://host:port/prefix`.
    #[arg(long)]
    pub alerts: Option<String>,
    /// Write dead letters (bad records with reason and raw input) to this JSON-lines file.
    #[arg(long)]
    pub dead_letters: Option<PathBuf>,
    /// Write late events to this JSON-lines file.
    #[arg(long)]
    pub late_events: Option<PathBuf>,
    /// On a bad record: divert it to the dead letters (default) or fail the run.
    #[arg(long, value_enum)]
    pub on_bad_record: Option<Policy>,
    /// Stop the simulator after this many events in total.
    #[arg(long)]
    pub events: Option<u64>,
    /// Stop after this much wall-clock time (e.g. 30s).
    #[arg(long, value_parser = parse_ms)]
    pub duration: Option<u64>,
    /// Pace the simulator in real time, times this factor (e.g. 1, 60).
    #[arg(long)]
    pub realtime: Option<f64>,
    /// Anomaly model: `default` (built in), `none`, or a model card path (`dir/name.json`).
    #[arg(long)]
    pub model: Option<String>,
    /// Do not print the summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Simulator settings.
    #[command(flatten)]
    pub sim: SimArgs,
    /// Broker settings (`--source kafka|mqtt`).
    #[command(flatten)]
    pub net: BrokerArgs,
    /// Kafka consumer group the offsets are committed under.
    #[arg(long)]
    pub group: Option<String>,
    /// Kafka: how far back in event time a restart re-reads to rebuild operator state (e.g. 5m).
    #[arg(long, value_parser = parse_ms)]
    pub recovery_horizon: Option<u64>,
    /// Kafka: file recording the output frontier at each commit (default `<alerts>.checkpoint`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Kafka/MQTT: finish once no message has arrived for this long (e.g. 5s).
    #[arg(long, value_parser = parse_ms)]
    pub until_idle: Option<u64>,
    /// Serve metrics, alerts and the dashboard on this address (e.g. 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Export traces (source batches, scoring batches, alerts) to this OTLP/HTTP endpoint.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Bad-record policies.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Policy {
    /// Stop with an error.
    Fail,
    /// Divert and count.
    DeadLetter,
}

impl RunArgs {
    /// Builds the run configuration: defaults, then the config file, then flags.
    pub fn into_config(self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                RunConfig::from_toml(&text)?
            }
            None => RunConfig::default(),
        };
        if let Some(kind) = self.source {
            c.source = match kind {
                SourceKind::Simulator => match c.source {
                    SourceConfig::Simulator(s) => SourceConfig::Simulator(s),
                    _ => SourceConfig::Simulator(SimConfig::default()),
                },
                SourceKind::Jsonl => SourceConfig::Jsonl { paths: self.input.clone() },
                SourceKind::Csv => SourceConfig::Csv { paths: self.input.clone() },
                SourceKind::Nab => match self.input.as_slice() {
                    [root] => SourceConfig::Nab { root: root.clone() },
                    _ => bail!("--source nab takes exactly one --input directory"),
                },
                SourceKind::Log => match self.input.as_slice() {
                    [path] => SourceConfig::Log { path: path.clone(), realtime: self.realtime },
                    _ => bail!("--source log takes exactly one --input file"),
                },
                SourceKind::Kafka => {
                    let (Some(broker), Some(topic)) = (&self.net.broker, &self.net.topic) else {
                        bail!("--source kafka needs --broker HOST:PORT and --topic NAME");
                    };
                    SourceConfig::Kafka(KafkaSourceConfig::new(broker, topic))
                }
                SourceKind::Mqtt => {
                    let Some(broker) = &self.net.broker else {
                        bail!("--source mqtt needs --broker HOST:PORT");
                    };
                    let topic = self.net.topic.as_deref().unwrap_or("sensors/#");
                    SourceConfig::Mqtt(MqttSourceConfig::new(broker, topic))
                }
            };
        } else if !self.input.is_empty() {
            bail!("--input needs --source jsonl|csv|nab|log");
        }
        match &c.source {
            SourceConfig::Jsonl { paths } | SourceConfig::Csv { paths } if paths.is_empty() => {
                bail!("--source {} needs at least one --input file", c.source.name())
            }
            _ => {}
        }
        if let SourceConfig::Simulator(sim) = &mut c.source {
            self.sim.apply(sim);
            if let Some(speed) = self.realtime {
                sim.realtime_speed = Some(speed);
            }
        } else if matches!(c.source, SourceConfig::Log { .. }) {
            if self.sim.devices.is_some() || self.sim.seed.is_some() {
                bail!("simulator flags (--devices, --seed, ...) need --source simulator");
            }
        } else if self.realtime.is_some() || self.sim.devices.is_some() || self.sim.seed.is_some() {
            bail!("simulator flags (--realtime, --devices, --seed, ...) need --source simulator");
        }
        match &mut c.source {
            SourceConfig::Kafka(k) => {
                if let Some(g) = &self.group {
                    k.group = g.clone();
                }
                if let Some(h) = self.recovery_horizon {
                    k.horizon_ms = h;
                }
                if let Some(i) = self.until_idle {
                    k.until_idle_ms = Some(i);
                }
            }
            SourceConfig::Mqtt(m) => {
                if let Some(t) = &self.net.topic_template {
                    m.topic_template = Some(t.clone());
                }
                if let Some(i) = self.until_idle {
                    m.until_idle_ms = Some(i);
                }
            }
            _ => {
                if self.group.is_some() || self.until_idle.is_some() || self.net.broker.is_some() {
                    bail!("--broker, --group and --until-idle need --source kafka|mqtt");
                }
            }
        }
        if let Some(v) = self.checkpoint {
            c.checkpoint = Some(v);
        }
        if let Some(v) = self.http {
            c.http = Some(v);
        }
        if let Some(v) = self.otlp_endpoint {
            c.otlp_endpoint = Some(v);
        }
        if let Some(v) = self.workers {
            c.workers = v;
        }
        if let Some(v) = self.processes {
            c.processes = v;
        }
        if let Some(v) = self.process {
            c.process = v;
        }
        if let Some(v) = self.hostfile {
            c.hostfile = Some(v);
        }
        if let Some(v) = self.window {
            c.window = v;
        }
        if let Some(v) = self.hop {
            c.hop = v;
        }
        if let Some(v) = self.lateness {
            c.lateness = v;
        }
        if let Some(v) = self.idle_timeout {
            c.idle_timeout = v;
        }
        if let Some(v) = self.rules {
            c.rules = Some(v);
        }
        if self.no_reload {
            c.reload_rules = false;
        }
        if let Some(a) = self.alerts {
            c.alerts = AlertOutput::parse(&a)?;
        }
        if let Some(v) = self.dead_letters {
            c.dead_letters = Some(v);
        }
        if let Some(v) = self.late_events {
            c.late_events = Some(v);
        }
        if let Some(p) = self.on_bad_record {
            c.on_bad_record = match p {
                Policy::Fail => BadRecordPolicy::Fail,
                Policy::DeadLetter => BadRecordPolicy::DeadLetter,
            };
        }
        if let Some(v) = self.events {
            c.max_events = Some(v);
        }
        if let Some(v) = self.duration {
            c.duration = Some(v);
        }
        if let Some(m) = self.model {
            c.model = m;
        }
        if self.quiet {
            c.summary = false;
        }
        c.validate()?;
        Ok(c)
    }
}

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
    /// Messages per Kafka batch.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Dead-letter file (JSON lines).
    #[arg(long)]
    pub dead_letters: Option<PathBuf>,
    /// Exit once nothing has arrived for this long (e.g. 5s).
    #[arg(long, value_parser = parse_ms)]
    pub until_idle: Option<u64>,
}

impl SimulateArgs {
    /// The simulator configuration.
    pub fn sim_config(&self) -> SimConfig {
        let mut sim = SimConfig::default();
        self.sim.apply(&mut sim);
        sim.realtime_speed = self.realtime;
        sim
    }
}
