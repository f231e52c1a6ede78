//! The threshold-rule operator: windows in, alerts out, with the rules changeable while running.

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::alert::Alert;
use crate::names::Dictionary;
use crate::ops::window::WindowAgg;
use crate::ops::{hold, Held};
use crate::rules::{Control, RuleBook};
use crate::runtime::evict::StateIdle;
use crate::runtime::metrics::Counters;

/// Extension trait: evaluate threshold rules on windows.
pub trait ApplyRules<'scope> {
    /// Evaluates the rules in `control` (the updates of a differential collection of
    /// [`Control`] records, broadcast to every worker) on each window, in event-time order.
    /// Changes at time `t` apply to windows emitted at `t` and later, so a rules file
    /// reloaded mid-run takes effect from the current frontier on.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use sensorflow_operators::*;
    ///
    /// let dict = Dictionary::default();
    /// let (dev, temp) = (dict.device("d1"), dict.metric("temp"));
    /// let rule = Rule {
    ///     name: "hot".into(), metric: "temp".into(), devices: None, field: Field::Max,
    ///     op: Comparator::Above, value: TotalF64(80.0), hysteresis: TotalF64(0.0),
    ///     min_duration_ms: 0, severity: "warning".into(),
    /// };
    /// let d = dict.clone();
    /// let out = timely::example(move |scope| {
    ///     let win = |start: u64, max| WindowAgg { device: dev, metric: temp, start, end: start + 10,
    ///         count: 1, min: max, max, mean: max, variance: 0.0, first: max, last: max };
    ///     let control = vec![(Control::Rule(rule), 0u64, 1isize)].to_stream(scope).container::<Vec<_>>();
    ///     vec![win(0, 50.0), win(10, 90.0), win(20, 95.0), win(30, 10.0)]
    ///         .to_stream(scope).container::<Vec<_>>()
    ///         .apply_rules(control, d, Counters::shared(), StateIdle(None))
    ///         .capture()
    /// });
    /// let alerts: Vec<Alert> = sensorflow_operators::testing::captured(&out);
    /// let kinds: Vec<_> = alerts.iter().map(|a| (a.kind, a.key.window_start)).collect();
    /// assert_eq!(kinds, vec![(AlertKind::Fired, 10), (AlertKind::Cleared, 10)]);
    /// ```
    fn apply_rules(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
    ) -> StreamVec<'scope, u64, Alert>;
}

impl<'scope> ApplyRules<'scope> for StreamVec<'scope, u64, WindowAgg> {
    fn apply_rules(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
    ) -> StreamVec<'scope, u64, Alert> {
        self.binary_frontier(control, Pipeline, Pipeline, "ApplyRules", move |_cap, _info| {
            let mut book = RuleBook::with_idle(idle);
            let mut windows: Held<WindowAgg> = BTreeMap::new();
            let mut changes: BTreeMap<u64, Vec<(Control, isize)>> = BTreeMap::new();
            let mut alerts = Vec::new();
            // Alerts from rule changes go out at the change's time, under a kept capability.
            let mut control_cap: Option<Capability<u64>> = None;
            move |(wins, wf), (ctl, cf), output| {
                wins.for_each_stamp(|cap, data| hold(&mut windows, cap, data));
                ctl.for_each_stamp(|cap, data| {
                    let Some(held) = cap.retain_least(0) else {
                        return;
                    };
                    match &mut control_cap {
                        Some(c) if c.time() <= held.time() => {}
                        slot => *slot = Some(held),
                    }
                    for batch in data {
                        for (change, time, diff) in batch.drain(..) {
                            changes.entry(time).or_default().push((change, diff));
                        }
                    }
                });
                let ready = |t: &u64| !wf.less_equal(t) && !cf.less_equal(t);
                loop {
                    let next_win = windows.keys().next().copied().filter(ready);
                    let next_ctl = changes.keys().next().copied().filter(ready);
                    let t = match (next_win, next_ctl) {
                        (None, None) => break,
                        (Some(a), Some(b)) => a.min(b),
                        (Some(a), None) => a,
                        (None, Some(b)) => b,
                    };
                    if let Some(updates) = changes.remove(&t) {
                        book.apply(&updates, &dict, &mut alerts);
                        if !alerts.is_empty() {
                            if let Some(cap) = &control_cap {
                                let cap = cap.delayed(&t.max(*cap.time()));
                                Counters::add(&counters.alerts, alerts.len() as u64);
                                output.session(&cap).give_container(&mut alerts);
                            }
                            alerts.clear();
                        }
                    }
                    if windows.keys().next() == Some(&t) {
                        if let Some((cap, batch)) = windows.remove(&t) {
                            for w in &batch {
                                book.evaluate(w, &dict, &mut alerts);
                            }
                            let gone = book.evict_idle();
                            if gone > 0 {
                                tracing::debug!(
                                    episodes = gone,
                                    "pending rule episodes of idle series dropped"
                                );
                                Counters::add(&counters.evicted_series, gone as u64);
                            }
                            Counters::add(&counters.alerts, alerts.len() as u64);
                            if let Some(mut r) =
                                crate::runtime::probe::recorder(crate::runtime::probe::Hop::AlertDecided)
                            {
                                alerts.iter().for_each(|a| r.record(a.window_end, 1));
                            }
                            output.session(&cap).give_container(&mut alerts);
                            alerts.clear();
                        }
                    }
                }
                // Release the control capability once no pending change needs it.
                if let Some(cap) = &mut control_cap {
                    match changes.keys().next() {
                        Some(&t) if t >= *cap.time() => cap.downgrade(&t),
                        Some(_) => {}
                        None => {
                            let f = cf.frontier().iter().copied().min();
                            match f {
                                Some(t) if t >= *cap.time() => cap.downgrade(&t),
                                Some(_) => {}
                                None => control_cap = None,
                            }
                        }
                    }
                }
            }
        })
    }
}
