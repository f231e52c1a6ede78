//! Choosing and loading the anomaly model for a run, and swapping it when its file changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sensorflow_models::detector::artifact::{default_model_files, default_scorer, load_scorer};
use sensorflow_operators::{lock, Scorer, ScorerFactory, ScorerReload};

use crate::observe::telemetry::{ModelInfo, Telemetry};
use crate::Error;

/// A model's version: the first 16 hex digits of the XXH3 hash of its card and weights.
fn version(card: &[u8], weights: &[u8]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(card);
    h.update(weights);
    format!("{:016x}", h.digest())
}

fn version_of_card(path: &Path) -> String {
    let (dir, name) = card_parts(path);
    let card = std::fs::read(path).unwrap_or_default();
    let weights = std::fs::read(dir.join(format!("{name}.bpk"))).unwrap_or_default();
    version(&card, &weights)
}

/// Name and version of the model `choice` names (empty for `none`), for metrics.
pub fn model_info(choice: &str, factory: Option<&ScorerFactory>) -> ModelInfo {
    let Some(factory) = factory else { return ModelInfo::default() };
    let name = factory().0.name().to_string();
    let version = match choice {
        "default" => {
            let (card, weights) = default_model_files();
            version(card.as_bytes(), weights)
        }
        path => version_of_card(Path::new(path)),
    };
    ModelInfo { name, version, reloads: 0 }
}

/// Splits a card path `dir/name.json` into (dir, name).
fn card_parts(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

fn modified(path: &Path) -> Option<SystemTime> {
    let (dir, name) = card_parts(path);
    let bpk = dir.join(format!("{name}.bpk"));
    let a = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let b = std::fs::metadata(bpk).and_then(|m| m.modified()).ok();
    a.max(b)
}

/// A reload hook: at most every 500 ms, checks the card and weights; when either changed and
/// the new model loads, returns it (a model that fails to load is reported and skipped).
fn reload_hook(path: PathBuf, telemetry: Option<Arc<Telemetry>>) -> ScorerReload {
    let mut seen = modified(&path);
    let mut last_check = Instant::now();
    Box::new(move || {
        if last_check.elapsed() < Duration::from_millis(500) {
            return None;
        }
        last_check = Instant::now();
        let now = modified(&path);
        if now == seen {
            return None;
        }
        seen = now;
        let (dir, name) = card_parts(&path);
        match load_scorer(&dir, &name) {
            Ok(s) => {
                tracing::info!(target: "sensorflow::model", model = %path.display(), "anomaly model reloaded");
                if let Some(t) = &telemetry {
                    let mut m = lock(&t.model);
                    m.name = sensorflow_operators::Scorer::name(&s).to_string();
                    m.version = version_of_card(&path);
                    m.reloads += 1;
                }
                Some(Box::new(s) as Box<dyn Scorer>)
            }
            Err(e) => {
                tracing::warn!(target: "sensorflow::model", model = %path.display(), error = %e, "anomaly model reload failed, keeping the previous one");
                None
            }
        }
    })
}

/// The scorer factory for `choice` (`default`, `none`, or a card path), checking that the
/// model loads before the run starts.
pub fn scorer_factory(choice: &str) -> Result<Option<ScorerFactory>, Error> {
    scorer_factory_with(choice, None)
}

/// [`scorer_factory`], reporting reloads to `telemetry`.
pub fn scorer_factory_with(
    choice: &str,
    telemetry: Option<Arc<Telemetry>>,
) -> Result<Option<ScorerFactory>, Error> {
    match choice {
        "none" => Ok(None),
        "default" => {
            let scorer = default_scorer()
                .map_err(|e| Error::Config(format!("the built-in model does not load: {e}")))?;
            Ok(Some(Arc::new(move || (Box::new(scorer.clone()) as Box<dyn Scorer>, None))))
        }
        path => {
            let path = PathBuf::from(path);
            if path.extension().is_none_or(|e| e != "json") {
                return Err(Error::Config(format!(
                    "--model {} must be a model card (.json), `default` or `none`",
                    path.display()
                )));
            }
            let (dir, name) = card_parts(&path);
            let scorer = load_scorer(&dir, &name).map_err(Error::Model)?;
            Ok(Some(Arc::new(move || {
                (
                    Box::new(scorer.clone()) as Box<dyn Scorer>,
                    Some(reload_hook(path.clone(), telemetry.clone())),
                )
            })))
        }
    }
}

/// A device model that reads some of a device's columns (a learned card's metrics, in the
/// card's order), naming the device's own columns in its alerts.
struct ProjectedRows {
    model: sensorflow_models::device::DeviceModel,
    /// The device's column of each of the model's metrics.
    columns: Vec<usize>,
    row: Vec<Option<f64>>,
}

impl sensorflow_operators::RowModel for ProjectedRows {
    fn push(&mut self, values: &[Option<f64>]) -> sensorflow_operators::RowVerdict {
        use sensorflow_operators::RowModel;
        self.row.clear();
        self.row.extend(self.columns.iter().map(|&c| values.get(c).copied().flatten()));
        let mut verdict = RowModel::push(&mut self.model, &self.row);
        if let Some(top) = verdict.fired.as_mut() {
            *top = top.iter().filter_map(|&i| self.columns.get(i).copied()).collect();
        }
        verdict
    }

    fn is_live(&self) -> bool {
        self.model.is_live()
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        self.model.to_snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> bool {
        self.model.restore_snapshot(state)
    }
}

/// The device-model factory `config` asks for (`None` for `device_model = "none"`): one
/// model per device of at least two metrics, its rows one window hop apart: the learned row
/// model of a card for devices with the card's metrics, the statistical model otherwise. With
/// `default`, the cards shipped in the binary, each used only where its row interval is the
/// windows' hop.
/// Every model made is counted in `tally` under its name (the card's, or `statistical`).
pub fn device_model_factory(
    config: &crate::config::RunConfig,
    tally: ModelTally,
) -> Result<Option<sensorflow_operators::RowModelFactory>, Error> {
    use sensorflow_models::device::learned::{default_row_priors, load_row_prior};
    use sensorflow_models::device::{DeviceConfig, DeviceModel};
    if config.device_model == "none" {
        return Ok(None);
    }
    let spec = config.window_spec()?;
    let cfg = DeviceConfig { warmup_rows: config.device_warmup_rows()?, ..DeviceConfig::default() };
    cfg.validate().map_err(|e| Error::Config(e.to_string()))?;
    let interval = spec.hop_ms;
    let priors = match config.device_model.as_str() {
        "statistical" => Vec::new(),
        "default" => {
            let shipped = default_row_priors().map_err(|e| Error::Config(e.to_string()))?;
            shipped
                .into_iter()
                .filter(|(_, p)| p.schema().interval_ms == interval)
                .map(|(name, p)| (name.to_string(), p))
                .collect()
        }
        card => {
            let prior = load_row_prior(Path::new(card)).map_err(|e| Error::Config(e.to_string()))?;
            if prior.schema().interval_ms != interval {
                return Err(Error::Config(format!(
                    "{card}: the row model was trained on rows {} ms apart, but windows here step {} ms \
                     (set --window/--hop to match, or retrain with --interval)",
                    prior.schema().interval_ms,
                    interval
                )));
            }
            let name = Path::new(card).file_stem().map(|s| s.to_string_lossy().into_owned());
            vec![(name.unwrap_or_else(|| card.to_string()), prior)]
        }
    };
    let count = move |name: &str| *lock(&tally).entry(name.to_string()).or_insert(0) += 1;
    let warned = std::sync::atomic::AtomicBool::new(false);
    // The user's own card not fitting a device is worth a warning; the shipped one not
    // fitting another device type is expected.
    let explicit = config.device_model != "default";
    Ok(Some(Arc::new(move |metrics: &[Arc<str>]| {
        if metrics.len() < 2 {
            return None;
        }
        // A device that sends every metric of a card runs its learned model on those columns
        // (any others, such as a `label` column, are not part of its rows).
        for (name, p) in &priors {
            let columns: Option<Vec<usize>> = p
                .schema()
                .metrics
                .iter()
                .map(|name| metrics.iter().position(|m| m.as_ref() == name.as_str()))
                .collect();
            if let Some(columns) = columns {
                return DeviceModel::with_prior(p.clone(), &cfg).ok().map(|model| {
                    count(name);
                    Box::new(ProjectedRows { model, columns, row: Vec::new() })
                        as Box<dyn sensorflow_operators::RowModel>
                });
            }
        }
        if let Some((_, p)) = priors.first().filter(|_| explicit) {
            // Once per run: a device the user's card does not fit gets the statistical model.
            if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    metrics = ?metrics,
                    card = ?p.schema().metrics,
                    "a device without every metric of the row-model card gets the statistical device model"
                );
            }
        }
        DeviceModel::new(metrics.len(), interval, &cfg).ok().map(|m| {
            count("statistical");
            Box::new(m) as Box<dyn sensorflow_operators::RowModel>
        })
    })))
}

/// Device models made during a run, by name (the summary prints them).
pub type ModelTally = Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

/// A score sink writing `device,ts,score,state` lines to `path` (created, with a header).
pub fn score_file(path: &Path) -> Result<sensorflow_operators::ScoreSink, Error> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "device,ts,score,state").map_err(|e| Error::io(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))?;
    let w = std::sync::Mutex::new(w);
    let path = path.to_path_buf();
    Ok(Arc::new(move |rows: &[sensorflow_operators::ScoredRow]| {
        let mut w = lock(&w);
        let result = rows
            .iter()
            .try_for_each(|r| writeln!(w, "{},{},{:.4},{}", r.device, r.ts, r.score, r.phase.name()))
            .and_then(|()| w.flush());
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "writing device scores");
        }
    }))
}
