//! `run`, `replay` and `record`: the pipeline's flags. Precedence, written down once: built-in
//! defaults, then the `--config` file, then flags.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use sensorflow::config::duration::parse_ms;
use sensorflow::config::{AlertOutput, EventTime, RunConfig};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::{KafkaSourceConfig, MqttSourceConfig, SourceConfig};
use sensorflow_operators::BadRecordPolicy;

/// Overwrites `slot` with the flag's value when the flag was given (`Option` slots take the
/// value wrapped in `Some`).
fn set<T, V: Into<T>>(slot: &mut T, flag: Option<V>) {
    if let Some(v) = flag {
        *slot = v.into();
    }
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

/// Bad-record policies.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Policy {
    /// Stop with an error.
    Fail,
    /// Divert and count.
    DeadLetter,
}

impl From<Policy> for BadRecordPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Fail => BadRecordPolicy::Fail,
            Policy::DeadLetter => BadRecordPolicy::DeadLetter,
        }
    }
}

/// Against whose progress events are judged late.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EventTimeArg {
    /// Their partition's newest event (input in time order, or nearly).
    Partition,
    /// Their device's newest event, within --device-spread of the partition's (files ordered
    /// per device).
    Device,
}

impl From<EventTimeArg> for EventTime {
    fn from(e: EventTimeArg) -> Self {
        match e {
            EventTimeArg::Partition => EventTime::Partition,
            EventTimeArg::Device => EventTime::Device,
        }
    }
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

/// What `record` does: the source and event limit of `run`, and the log file.
#[derive(Debug)]
pub struct RecordConfig {
    /// The run configuration whose source is recorded.
    pub run: RunConfig,
    /// The log file to write.
    pub out: PathBuf,
}

impl RecordArgs {
    /// The validated record configuration.
    pub fn into_config(self) -> Result<RecordConfig> {
        let out = self.out;
        Ok(RecordConfig { run: self.run.into_config()?, out })
    }
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

impl ReplayArgs {
    /// The run configuration: `run --source log --input FILE --realtime SPEED`.
    pub fn into_config(mut self) -> Result<RunConfig> {
        self.run.source = Some(SourceKind::Log);
        self.run.input = vec![self.file];
        self.run.realtime = self.speed;
        self.run.into_config()
    }
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
    /// Overrides `sim` with the flags given.
    pub fn apply(&self, sim: &mut SimConfig) {
        set(&mut sim.devices, self.devices);
        set(&mut sim.seed, self.seed);
        set(&mut sim.span_ms, self.span);
        set(&mut sim.interval_ms, self.interval);
        set(&mut sim.anomaly_rate_per_hour, self.anomaly_rate);
        set(&mut sim.metrics, self.metrics.clone());
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
    /// Events stamped before this epoch-ms time are dead letters (default 0: no floor; e.g.
    /// 946684800000 for 2000-01-01).
    #[arg(long)]
    pub min_ts: Option<u64>,
    /// Events further ahead of the wall clock than this are dead letters (default 1d; 0: no
    /// limit).
    #[arg(long, value_parser = parse_ms)]
    pub max_future: Option<u64>,
    /// An event further ahead of its partition's newest than this is a dead letter unless 64
    /// events in a row (or the end of the input) confirm the jump (default 1d; 0: no limit).
    #[arg(long, value_parser = parse_ms)]
    pub max_jump: Option<u64>,
    /// Flow control: the most events one worker's source may have in the graph before it holds
    /// back partitions that are ahead (default 262144; bounds memory whatever the input).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Drop per-series and per-device state idle this long in event time (e.g. 1h, the
    /// default; 0: never); a device that comes back starts fresh.
    #[arg(long, value_parser = parse_ms)]
    pub state_idle: Option<u64>,
    /// Allowed lateness per source partition, or per device with --event-time device (e.g. 2s).
    #[arg(long, value_parser = parse_ms)]
    pub lateness: Option<u64>,
    /// Judge events late against their partition's progress (default) or their device's
    /// (`device`: for files of per-device recordings one after another; windows close
    /// --device-spread later).
    #[arg(long, value_enum, value_name = "MODE")]
    pub event_time: Option<EventTimeArg>,
    /// With --event-time device: how far devices may differ in event time (default 1d; > 0).
    #[arg(long, value_parser = parse_ms, value_name = "DURATION")]
    pub device_spread: Option<u64>,
    /// Quiet-partition idle timeout (e.g. 5s).
    #[arg(long, value_parser = parse_ms)]
    pub idle_timeout: Option<u64>,
    /// Live sources (kafka, mqtt): let the watermark follow the wall clock this far behind it
    /// (e.g. 200ms), so a window closes at most that long after its end even when the devices
    /// go quiet; events it overtakes are late. Off by default: such runs are not deterministic.
    #[arg(long, value_parser = parse_ms, value_name = "DELAY")]
    pub wall_clock_watermark: Option<u64>,
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
    /// Device-level model over rows of all of a device's metrics per window: `default` (the
    /// shipped learned model where it fits, the statistical one elsewhere), `none`,
    /// `statistical`, or a learned row-model card (`name.json`, from `sensorflow train --data`).
    #[arg(long)]
    pub device_model: Option<String>,
    /// Warm-up per device for the device model: rows (windows, e.g. `1800`) or event time
    /// (e.g. `2h`, that many window hops) [default: 1800 rows, or 1h where that is more]
    #[arg(long, value_parser = parse_warmup)]
    pub device_warmup: Option<Warmup>,
    /// Write every device row's score and state to this CSV (`device,ts,score,state`).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Do not print the summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write the run's counts (events in, processed, late, dead, duplicates, windows, alerts per
    /// rule, elapsed) as JSON to this file at the end.
    #[arg(long, value_name = "FILE")]
    pub counts_json: Option<PathBuf>,
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
        self.apply_source(&mut c)?;
        set(&mut c.checkpoint, self.checkpoint);
        set(&mut c.http, self.http);
        set(&mut c.otlp_endpoint, self.otlp_endpoint);
        set(&mut c.workers, self.workers);
        set(&mut c.processes, self.processes);
        set(&mut c.process, self.process);
        set(&mut c.hostfile, self.hostfile);
        set(&mut c.window, self.window);
        set(&mut c.hop, self.hop);
        set(&mut c.lateness, self.lateness);
        set(&mut c.event_time, self.event_time);
        set(&mut c.device_spread, self.device_spread);
        if self.device_spread.is_some() && c.event_time != EventTime::Device {
            bail!("--device-spread needs --event-time device");
        }
        set(&mut c.min_ts, self.min_ts);
        set(&mut c.max_future, self.max_future);
        set(&mut c.max_jump, self.max_jump);
        set(&mut c.max_in_flight, self.max_in_flight);
        set(&mut c.state_idle, self.state_idle);
        set(&mut c.idle_timeout, self.idle_timeout);
        if self.wall_clock_watermark.is_some() {
            c.wall_clock_watermark = self.wall_clock_watermark;
        }
        set(&mut c.rules, self.rules);
        set(&mut c.reload_rules, self.no_reload.then_some(false));
        set(&mut c.alerts, self.alerts.as_deref().map(AlertOutput::parse).transpose()?);
        set(&mut c.dead_letters, self.dead_letters);
        set(&mut c.late_events, self.late_events);
        set(&mut c.on_bad_record, self.on_bad_record);
        set(&mut c.max_events, self.events);
        set(&mut c.duration, self.duration);
        set(&mut c.model, self.model);
        set(&mut c.device_model, self.device_model);
        match self.device_warmup {
            Some(Warmup::Rows(rows)) => {
                c.device_warmup = rows;
                c.device_warmup_time = None;
            }
            Some(Warmup::Time(ms)) => c.device_warmup_time = Some(ms),
            None => {}
        }
        set(&mut c.scores, self.scores.map(Some));
        set(&mut c.counts_json, self.counts_json.map(Some));
        set(&mut c.summary, self.quiet.then_some(false));
        c.validate()?;
        Ok(c)
    }

    /// The source flags (`--source`, `--input`, simulator and broker flags) over `c.source`,
    /// with the checks of which flags go with which source.
    fn apply_source(&self, c: &mut RunConfig) -> Result<()> {
        if let Some(kind) = self.source {
            c.source = self.source_of(kind, std::mem::take(&mut c.source))?;
        } else if !self.input.is_empty() {
            bail!("--input needs --source jsonl|csv|nab|log");
        }
        match &c.source {
            SourceConfig::Jsonl { paths } | SourceConfig::Csv { paths } if paths.is_empty() => {
                bail!("--source {} needs at least one --input file", c.source.name())
            }
            _ => {}
        }
        let sim = &self.sim;
        match &mut c.source {
            SourceConfig::Simulator(s) => {
                sim.apply(s);
                set(&mut s.realtime_speed, self.realtime);
            }
            SourceConfig::Log { .. } if sim.devices.is_some() || sim.seed.is_some() => {
                bail!("simulator flags (--devices, --seed, ...) need --source simulator");
            }
            SourceConfig::Log { .. } => {}
            _ if self.realtime.is_some() || sim.devices.is_some() || sim.seed.is_some() => {
                bail!("simulator flags (--realtime, --devices, --seed, ...) need --source simulator");
            }
            _ => {}
        }
        match &mut c.source {
            SourceConfig::Kafka(k) => {
                set(&mut k.group, self.group.clone());
                set(&mut k.horizon_ms, self.recovery_horizon);
                set(&mut k.until_idle_ms, self.until_idle);
            }
            SourceConfig::Mqtt(m) => {
                set(&mut m.topic_template, self.net.topic_template.clone());
                set(&mut m.until_idle_ms, self.until_idle);
            }
            _ if self.group.is_some() || self.until_idle.is_some() || self.net.broker.is_some() => {
                bail!("--broker, --group and --until-idle need --source kafka|mqtt");
            }
            _ => {}
        }
        Ok(())
    }

    /// The source `--source kind` names; `current` (the config file's) is kept for a simulator.
    fn source_of(&self, kind: SourceKind, current: SourceConfig) -> Result<SourceConfig> {
        Ok(match kind {
            SourceKind::Simulator => match current {
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
        })
    }
}

/// `run` and `replay`: logging (which may export to the config's OTLP endpoint), the run, and
/// the summary on stderr.
pub fn run(config: RunConfig) -> Result<()> {
    let _logging = sensorflow::observe::logging::init(config.otlp_endpoint.as_deref())?;
    let summary = sensorflow::run(&config)?;
    if config.summary {
        eprint!("{summary}");
    }
    if let Some(path) = &config.counts_json {
        let text = serde_json::to_string_pretty(&summary.counts())?;
        std::fs::write(path, text).with_context(|| format!("writing the counts to {}", path.display()))?;
    }
    Ok(())
}

/// `record`: the source into a binary log, and one line saying what was written.
pub fn record(config: RecordConfig) -> Result<()> {
    let RecordConfig { run, out } = config;
    let started = std::time::Instant::now();
    let r = sensorflow::tools::record::record(&run.source, &out, run.max_events)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "recorded {} events ({} chunks, {:.1} MB, {} bad records skipped) to {} in {secs:.1} s",
        r.events,
        r.chunks,
        r.bytes as f64 / 1e6,
        r.dead_lettered,
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overwrites_only_when_the_flag_was_given() {
        let (mut n, mut path) = (1usize, None::<PathBuf>);
        set(&mut n, None::<usize>);
        set(&mut path, None::<PathBuf>);
        assert_eq!((n, &path), (1, &None));
        set(&mut n, Some(4usize));
        set(&mut path, Some(PathBuf::from("x")));
        assert_eq!((n, path), (4, Some(PathBuf::from("x"))));
    }

    #[test]
    fn no_flags_give_the_built_in_defaults() -> Result<()> {
        assert_eq!(RunArgs::default().into_config()?, RunConfig::default());
        Ok(())
    }

    #[test]
    fn replay_is_run_over_the_log_at_its_speed() -> Result<()> {
        let args = ReplayArgs { file: "a.sflog".into(), speed: Some(2.0), run: RunArgs::default() };
        let c = args.into_config()?;
        assert_eq!(c.source, SourceConfig::Log { path: "a.sflog".into(), realtime: Some(2.0) });
        Ok(())
    }

    #[test]
    fn event_time_flags_set_the_mode_and_a_spread_needs_device_mode() -> Result<()> {
        let args = RunArgs {
            event_time: Some(EventTimeArg::Device),
            device_spread: Some(3_600_000),
            ..RunArgs::default()
        };
        let c = args.into_config()?;
        assert_eq!((c.event_time, c.device_spread), (EventTime::Device, 3_600_000));
        let args = RunArgs { device_spread: Some(3_600_000), ..RunArgs::default() };
        let e = args.into_config().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "--device-spread needs --event-time device");
        Ok(())
    }

    #[test]
    fn simulator_flags_with_another_source_are_refused() {
        let args = RunArgs {
            source: Some(SourceKind::Jsonl),
            input: vec!["a.jsonl".into()],
            sim: SimArgs { devices: Some(3), ..SimArgs::default() },
            ..RunArgs::default()
        };
        let e = args.into_config().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "simulator flags (--realtime, --devices, --seed, ...) need --source simulator");
    }
}

/// `--device-warmup`: rows or event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// Rows (windows).
    Rows(usize),
    /// Event time, ms.
    Time(u64),
}

fn parse_warmup(s: &str) -> Result<Warmup, String> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Warmup::Rows).map_err(|e| format!("{s:?}: {e}"));
    }
    parse_ms(s).map(Warmup::Time).map_err(|e| format!("{s:?} is neither rows nor a duration: {e}"))
}
