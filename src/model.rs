//! Choosing and loading the anomaly model for a run, and swapping it when its file changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sensorflow_models::detector::artifact::{default_scorer, load_scorer};
use sensorflow_operators::{Scorer, ScorerFactory, ScorerReload};

use crate::Error;

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
fn reload_hook(path: PathBuf) -> ScorerReload {
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
                eprintln!("anomaly model reloaded from {}", path.display());
                Some(Box::new(s) as Box<dyn Scorer>)
            }
            Err(e) => {
                eprintln!("anomaly model reload failed, keeping the previous one: {e}");
                None
            }
        }
    })
}

/// The scorer factory for `choice` (`default`, `none`, or a card path), checking that the
/// model loads before the run starts.
pub fn scorer_factory(choice: &str) -> Result<Option<ScorerFactory>, Error> {
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
                (Box::new(scorer.clone()) as Box<dyn Scorer>, Some(reload_hook(path.clone())))
            })))
        }
    }
}
