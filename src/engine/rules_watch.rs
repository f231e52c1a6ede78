//! The rules file, watched: a changed file becomes retractions and insertions in the rules
//! collection, applied from the current event time; a file that fails to parse keeps the old
//! rules.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use differential_dataflow::input::InputSession;
use sensorflow_operators::Control;

use crate::config::rules::load_rules;
use crate::config::RunConfig;

/// Watches the rules file and turns a changed file into collection updates.
pub(super) struct RulesWatch {
    path: Option<PathBuf>,
    current: Vec<Control>,
    modified: Option<SystemTime>,
    last_check: Instant,
}

impl RulesWatch {
    /// Watches `config`'s rules file (if reloading is on), starting from `initial`.
    pub(super) fn new(config: &RunConfig, initial: &[Control]) -> Self {
        let path = config.rules.clone().filter(|_| config.reload_rules);
        let modified = path.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        RulesWatch { path, current: initial.to_vec(), modified, last_check: Instant::now() }
    }

    /// Every 100 ms: if the file changed, replaces the rules in `input`.
    pub(super) fn poll(&mut self, input: &mut InputSession<u64, Control, isize>) {
        let Some(path) = &self.path else { return };
        if self.last_check.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_check = Instant::now();
        let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
            return;
        };
        if Some(modified) == self.modified {
            return;
        }
        self.modified = Some(modified);
        match load_rules(path) {
            Ok(new) => {
                // Retract everything and insert the new set; differential cancels what is unchanged.
                for c in self.current.drain(..) {
                    input.remove(c);
                }
                for c in &new {
                    input.insert(c.clone());
                }
                tracing::info!("rules reloaded from {} at event time {}", path.display(), input.time());
                self.current = new;
            }
            Err(e) => tracing::warn!("rules reload failed, keeping the previous rules: {e}"),
        }
    }
}
