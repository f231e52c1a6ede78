//! Progress for long jobs (replays, conversions, training, benchmarks): an indicatif bar when
//! stderr is a terminal, otherwise a plain line every few seconds (logs, CI), never both.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sensorflow_models::detector::optimize::Event as OptimizeEvent;
use sensorflow_operators::Counters;

/// A progress display for one job.
#[derive(Debug)]
pub struct Meter {
    label: String,
    unit: String,
    total: Option<u64>,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    every: Duration,
    position: u64,
}

impl Meter {
    /// A meter for `label`, counting `unit`s out of `total` (if known). Terminal output is
    /// a bar; otherwise a line every `every` (and none for jobs shorter than that).
    pub fn new(label: &str, total: Option<u64>, unit: &str, every: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = match total {
                Some(_) => {
                    "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg} (eta {eta})"
                }
                None => "{prefix} [{elapsed_precise}] {spinner} {human_pos} {msg}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Meter {
            label: label.to_string(),
            unit: unit.to_string(),
            total,
            bar,
            started: now,
            last_line: now,
            every,
            position: 0,
        }
    }

    /// Whether a bar is drawn (stderr is a terminal).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Moves to `position`; `message` (rate, loss, …) is only built when it will be shown.
    pub fn set(&mut self, position: u64, message: impl FnOnce() -> String) {
        self.position = position;
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message());
            }
            None => {
                if self.last_line.elapsed() >= self.every {
                    self.last_line = Instant::now();
                    eprintln!("{}", self.line(&message()));
                }
            }
        }
    }

    /// The plain progress line.
    fn line(&self, message: &str) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let sep = if message.is_empty() { "" } else { ", " };
        format!("{}: {}{of} {} after {secs:.0} s{sep}{message}", self.label, self.position, self.unit)
    }

    /// Ends the display (the bar is cleared; the caller prints its own summary).
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_the_job_position_and_total() {
        let mut m = Meter::new("replay", Some(1000), "events", Duration::from_secs(3600));
        m.set(250, || "1.2M events/s".into());
        assert_eq!(m.position, 250);
        let line = m.line("1.2M events/s");
        assert!(line.starts_with("replay: 250/1000 events after "), "{line}");
        assert!(line.ends_with(", 1.2M events/s"), "{line}");
    }
}

/// Shows a run's progress (records read, rate, alerts) from a thread of its own, reading the
/// counters the workers already keep; stops when dropped.
#[derive(Debug)]
pub struct RunProgress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunProgress {
    /// Starts showing the progress of a run reading `source`.
    pub fn start(counters: Arc<Counters>, source: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let label = format!("run ({source})");
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sensorflow-progress".into())
            .spawn(move || {
                let mut meter = Meter::new(&label, None, "records", Duration::from_secs(10));
                let (mut last, mut last_n) = (Instant::now(), 0u64);
                let mut rate = 0.0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let n = Counters::get(&counters.records_in);
                    let dt = last.elapsed().as_secs_f64();
                    if dt >= 1.0 {
                        rate = n.saturating_sub(last_n) as f64 / dt;
                        (last, last_n) = (Instant::now(), n);
                    }
                    let alerts = Counters::get(&counters.alerts);
                    let dead = Counters::get(&counters.dead_lettered);
                    meter.set(n, || {
                        format!("{:.2}M records/s, {alerts} alerts, {dead} dead letters", rate / 1e6)
                    });
                }
                meter.finish();
            })
            .ok();
        RunProgress { stop, thread }
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Shows the model steps' events (`train`, `distill`, `prune`, `quantize`, `optimize`): a bar
/// per training run on a terminal, otherwise a line per epoch; notes and the report table on
/// standard output.
#[derive(Debug, Default)]
pub struct OptimizePrinter {
    meter: Option<Meter>,
}

impl OptimizePrinter {
    /// Shows one event.
    pub fn event(&mut self, event: OptimizeEvent) {
        match event {
            OptimizeEvent::Epoch { step, progress: p } => {
                let m = self.meter.get_or_insert_with(|| {
                    Meter::new(&step, Some(p.epochs as u64), "epochs", Duration::ZERO)
                });
                if m.is_bar() {
                    m.set(p.epoch as u64, || format!("loss {:.4}", p.loss));
                    if p.epoch >= p.epochs {
                        if let Some(m) = self.meter.take() {
                            m.finish();
                        }
                    }
                } else {
                    println!(
                        "{step}: epoch {}/{} loss {:.4} ({:.1} s)",
                        p.epoch,
                        p.epochs,
                        p.loss,
                        p.elapsed.as_secs_f64()
                    );
                }
            }
            // The run ended (perhaps early, on its time budget): drop its meter.
            OptimizeEvent::Trained { .. } => self.meter = None,
            OptimizeEvent::Note(text) => println!("{text}"),
            OptimizeEvent::Row(_) => {}
            OptimizeEvent::Report { table, .. } => println!("\n{table}"),
        }
    }
}
