//! Naive baselines for the rig benchmark and the driver that scores any detector over a
//! benchmark set into a table (per rig shape and overall, events by fault kind and by
//! whether the fault stayed inside the sensors' warm-up ranges).

use std::fmt;

use super::{EventCounts, RowCounts, RowsError};
use crate::synth::rigs::{benchmark, FaultKind, RigRun, RigShape};

/// The z-score baseline's threshold, fixed by rule before any run, not tuned: 4σ, the
/// customary "rare by construction" bound (a Gaussian reading exceeds it with probability
/// 6.3·10⁻⁵, so a 10-sensor rig at its warm-up operating point would false-alarm about once
/// per 1,600 rows). Never to be changed by looking at held-out figures.
pub const ZSCORE_K: f64 = 4.0;

/// A naive detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Baseline {
    /// Per-sensor z-score against the warm-up: each sensor's mean and (population) σ over
    /// the warm-up rows; a row is flagged if any sensor's |z| > `k`, or any sensor is missing.
    ZScore {
        /// The threshold.
        k: f64,
    },
    /// Every row flagged.
    AllAnomalous,
}

impl Baseline {
    /// The z-score baseline with [`ZSCORE_K`].
    pub fn zscore() -> Baseline {
        Baseline::ZScore { k: ZSCORE_K }
    }

    /// Name for tables (`zscore k=4`, `all`).
    pub fn name(&self) -> String {
        match self {
            Baseline::ZScore { k } => format!("zscore k={k}"),
            Baseline::AllAnomalous => "all".to_string(),
        }
    }

    /// One prediction per row of `run` (warm-up rows included; scoring skips them).
    pub fn predict(&self, run: &RigRun) -> Vec<bool> {
        match *self {
            Baseline::AllAnomalous => vec![true; run.rows.len()],
            Baseline::ZScore { k } => {
                let n = run.sensors.len();
                let warm = &run.rows[..run.warmup_rows.min(run.rows.len())];
                let (mut sum, mut sq, mut cnt) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                for row in warm {
                    for (j, v) in row.values.iter().enumerate() {
                        if let Some(v) = *v {
                            sum[j] += v;
                            sq[j] += v * v;
                            cnt[j] += 1.0;
                        }
                    }
                }
                let stats: Vec<(f64, f64)> = (0..n)
                    .map(|j| {
                        let c = f64::max(cnt[j], 1.0);
                        let mean = sum[j] / c;
                        (mean, (sq[j] / c - mean * mean).max(0.0).sqrt().max(1e-12))
                    })
                    .collect();
                run.rows
                    .iter()
                    .map(|row| {
                        row.values.iter().zip(&stats).any(|(v, (mean, sd))| match v {
                            None => true,
                            Some(v) => ((v - mean) / sd).abs() > k,
                        })
                    })
                    .collect()
            }
        }
    }
}

impl std::str::FromStr for Baseline {
    type Err = RowsError;
    /// `zscore` ([`ZSCORE_K`]) or `all`.
    fn from_str(s: &str) -> Result<Self, RowsError> {
        match s {
            "zscore" => Ok(Baseline::zscore()),
            "all" => Ok(Baseline::AllAnomalous),
            _ => Err(RowsError::UnknownBaseline(s.to_string())),
        }
    }
}

/// Row counts (after the warm-up) and fault-event detection of one run's predictions.
pub fn score_run(run: &RigRun, predictions: &[bool]) -> Result<(RowCounts, EventCounts), RowsError> {
    let rows = RowCounts::count(&run.labels(), predictions, run.warmup_rows)?;
    let spans: Vec<(usize, usize)> = run
        .faults
        .iter()
        .filter(|f| f.start_row >= run.warmup_rows)
        .map(|f| (f.start_row, f.end_row))
        .collect();
    Ok((rows, EventCounts::count(&spans, predictions)))
}

/// One line of a benchmark table: pooled row counts and events of a group of runs or faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchmarkRow {
    /// Group name (rig shape, `overall`, fault kind, `in range`, `out of range`).
    pub name: String,
    /// Runs in the group (rig groups only; 0 for fault groups).
    pub runs: usize,
    /// Pooled row counts (fault groups: only the groups' faulty rows, so only recall means
    /// something).
    pub counts: RowCounts,
    /// Pooled fault events.
    pub events: EventCounts,
}

impl BenchmarkRow {
    fn named(name: &str) -> BenchmarkRow {
        BenchmarkRow { name: name.to_string(), ..BenchmarkRow::default() }
    }
}

/// A detector's figures on a benchmark set.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkTable {
    /// The detector.
    pub detector: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// One row per rig shape, then `overall` (pooled over every run).
    pub by_rig: Vec<BenchmarkRow>,
    /// Events by fault kind (kinds that occurred), then `in range` and `out of range`.
    pub by_fault: Vec<BenchmarkRow>,
}

/// Runs `predict` on every run of the benchmark set `seeds` (every rig shape × every seed)
/// and pools the scores.
pub fn run_detector(
    seeds: &[u64],
    detector: &str,
    mut predict: impl FnMut(&RigRun) -> Vec<bool>,
) -> Result<BenchmarkTable, RowsError> {
    let mut by_rig: Vec<BenchmarkRow> = RigShape::ALL.iter().map(|s| BenchmarkRow::named(s.name())).collect();
    let mut overall = BenchmarkRow::named("overall");
    let mut kinds: Vec<BenchmarkRow> = FaultKind::ALL.iter().map(|k| BenchmarkRow::named(k.name())).collect();
    let mut ranged = [BenchmarkRow::named("in range"), BenchmarkRow::named("out of range")];
    for run in benchmark(seeds) {
        let predictions = predict(&run);
        let (rows, events) = score_run(&run, &predictions)?;
        for group in [&mut by_rig[run.shape as usize], &mut overall] {
            group.runs += 1;
            group.counts.add(&rows);
            group.events.add(&events);
        }
        let labels = vec![true; predictions.len()];
        for (f, inside) in run.faults.iter().zip(run.in_range_faults()) {
            if f.start_row < run.warmup_rows {
                continue;
            }
            let span = f.start_row..f.end_row.min(predictions.len());
            let rows = RowCounts::count(&labels[span.clone()], &predictions[span], 0)?;
            let events = EventCounts::count(&[(f.start_row, f.end_row)], &predictions);
            let kind = FaultKind::ALL.iter().position(|&k| k == f.kind).unwrap_or(0);
            for group in [&mut kinds[kind], &mut ranged[usize::from(!inside)]] {
                group.counts.add(&rows);
                group.events.add(&events);
            }
        }
    }
    by_rig.push(overall);
    let mut by_fault: Vec<BenchmarkRow> = kinds.into_iter().filter(|k| k.events.events > 0).collect();
    by_fault.extend(ranged);
    Ok(BenchmarkTable { detector: detector.to_string(), seeds: seeds.to_vec(), by_rig, by_fault })
}

/// [`run_detector`] with a baseline.
pub fn run_baseline(baseline: &Baseline, seeds: &[u64]) -> Result<BenchmarkTable, RowsError> {
    run_detector(seeds, &baseline.name(), |run| baseline.predict(run))
}

fn delay(e: &EventCounts) -> String {
    e.median_delay().map_or_else(|| "–".to_string(), |d| format!("{d}"))
}

impl fmt::Display for BenchmarkTable {
    /// Two Markdown tables: rows by rig shape and overall, then events by fault group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "detector: {}, {} seeds, rows after the warm-up, no point adjustment",
            self.detector,
            self.seeds.len()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| rig | runs | rows | anomalous | precision | recall | F1 | FAR | missed | events detected | median delay (rows) |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for r in &self.by_rig {
            let c = &r.counts;
            writeln!(
                f,
                "| {} | {} | {} | {:.1} % | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} / {} | {} |",
                r.name,
                r.runs,
                c.rows(),
                100.0 * c.anomalous() as f64 / (c.rows().max(1)) as f64,
                c.precision(),
                c.recall(),
                c.f1(),
                c.false_alarm_rate(),
                c.missed_rate(),
                r.events.detected,
                r.events.events,
                delay(&r.events),
            )?;
        }
        writeln!(f)?;
        writeln!(f, "| faults | events | detected | row recall | median delay (rows) |")?;
        writeln!(f, "|---|---|---|---|---|")?;
        for r in &self.by_fault {
            let e = &r.events;
            writeln!(
                f,
                "| {} | {} | {} ({:.0} %) | {:.3} | {} |",
                r.name,
                e.events,
                e.detected,
                100.0 * e.rate(),
                r.counts.recall(),
                delay(e)
            )?;
        }
        Ok(())
    }
}
