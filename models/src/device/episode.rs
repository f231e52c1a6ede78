//! The anomaly-episode state machine of one device.

use serde::{Deserialize, Serialize};

/// Where a device stands after a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowState {
    /// Still learning its normal behaviour: no score yet.
    WarmUp,
    /// Normal, no episode.
    Normal,
    /// Abnormal, but not yet for the minimum duration.
    Pending,
    /// An episode is open (abnormal, or normal for less than the hold time).
    Open,
}

/// A change of episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transition {
    /// An episode opened.
    Fired {
        /// The metrics (indices) that contributed most while it was pending, largest first.
        top: Vec<usize>,
    },
    /// The open episode closed.
    Cleared {
        /// Rows the episode was open, hold included.
        rows: usize,
    },
}

/// One device's episode: opens after `min_duration` abnormal rows in a row, closes after
/// `hold` normal rows in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    min_duration: usize,
    hold: usize,
    state: RowState,
    /// Abnormal rows in a row (pending) or normal rows in a row (open).
    run: usize,
    /// Rows open so far.
    open_rows: usize,
    /// Per-metric contribution accumulated while pending.
    contribution: Vec<f64>,
}

impl Episode {
    /// A closed episode for a device of `metrics` metrics.
    pub fn new(metrics: usize, min_duration: usize, hold: usize) -> Self {
        Episode {
            min_duration: min_duration.max(1),
            hold: hold.max(1),
            state: RowState::Normal,
            run: 0,
            open_rows: 0,
            contribution: vec![0.0; metrics],
        }
    }

    /// The state after the last row.
    pub fn state(&self) -> RowState {
        self.state
    }

    /// Rows the current episode has been open (0 when none is).
    pub fn open_rows(&self) -> usize {
        if self.state == RowState::Open {
            self.open_rows
        } else {
            0
        }
    }

    /// Steps by one scored row: `abnormal`, with each metric's contribution to the score.
    pub fn step(&mut self, abnormal: bool, contribution: &[f64]) -> Option<Transition> {
        match (self.state, abnormal) {
            (RowState::Normal | RowState::WarmUp, false) => None,
            (RowState::Normal | RowState::WarmUp | RowState::Pending, true) => {
                if self.state != RowState::Pending {
                    self.run = 0;
                    self.contribution.iter_mut().for_each(|c| *c = 0.0);
                }
                self.run += 1;
                for (c, x) in self.contribution.iter_mut().zip(contribution) {
                    *c += x;
                }
                if self.run >= self.min_duration {
                    self.state = RowState::Open;
                    self.run = 0;
                    self.open_rows = 1;
                    Some(Transition::Fired { top: self.top(3) })
                } else {
                    self.state = RowState::Pending;
                    None
                }
            }
            (RowState::Pending, false) => {
                self.state = RowState::Normal;
                self.run = 0;
                None
            }
            (RowState::Open, true) => {
                self.run = 0;
                self.open_rows += 1;
                None
            }
            (RowState::Open, false) => {
                self.run += 1;
                self.open_rows += 1;
                if self.run >= self.hold {
                    self.state = RowState::Normal;
                    self.run = 0;
                    Some(Transition::Cleared { rows: self.open_rows })
                } else {
                    None
                }
            }
        }
    }

    /// The `k` metrics with the largest accumulated contribution, largest first (ties by
    /// index), leaving out metrics that contributed nothing.
    fn top(&self, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> =
            (0..self.contribution.len()).filter(|&i| self.contribution[i] > 0.0).collect();
        idx.sort_by(|&a, &b| self.contribution[b].total_cmp(&self.contribution[a]).then(a.cmp(&b)));
        idx.truncate(k);
        idx
    }
}
