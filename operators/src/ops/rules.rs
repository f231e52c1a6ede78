//! The threshold-rule operator: windows in, alerts out, with the rules changeable while running.

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, Operator};
use timely::dataflow::StreamVec;

use crate::alert::Alert;
use crate::event::Event;
use crate::names::Dictionary;
use crate::ops::window::WindowAgg;
use crate::ops::Held;
use crate::rules::{Control, EarlyCandidate, RuleBook};
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
    ///     min_duration_ms: 0, severity: "warning".into(), early: false,
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

    /// [`ApplyRules::apply_rules`], and rules with `early = true` fire as soon as a reading
    /// makes their condition true instead of at the window's end. `events` must be the
    /// windows' own input on this worker (the stream [`crate::Windows::windows_core`] read
    /// with `Pipeline`), `size_ms` their (tumbling) length. A reading fires once every earlier
    /// window of its key has been evaluated, so the alert is the one the window's end would
    /// have made (same id), marked with the reading's time ([`Alert::early_at`]).
    fn apply_rules_early(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        events: StreamVec<'scope, u64, Event>,
        size_ms: u64,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
    ) -> StreamVec<'scope, u64, Alert>;
}

/// What the rule operator reads: closed windows, and (for early rules) the readings.
#[derive(Clone, Debug)]
enum RuleInput {
    Window(WindowAgg),
    Reading(Event),
}

impl<'scope> ApplyRules<'scope> for StreamVec<'scope, u64, WindowAgg> {
    fn apply_rules(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
    ) -> StreamVec<'scope, u64, Alert> {
        rules_operator(self.map(RuleInput::Window), control, None, dict, counters, idle)
    }

    fn apply_rules_early(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        events: StreamVec<'scope, u64, Event>,
        size_ms: u64,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
    ) -> StreamVec<'scope, u64, Alert> {
        let input = self.map(RuleInput::Window).concat(events.map(RuleInput::Reading));
        rules_operator(input, control, Some(size_ms.max(1)), dict, counters, idle)
    }
}

fn rules_operator<'scope>(
    input: StreamVec<'scope, u64, RuleInput>,
    control: StreamVec<'scope, u64, (Control, u64, isize)>,
    early_size: Option<u64>,
    dict: Dictionary,
    counters: Arc<Counters>,
    idle: StateIdle,
) -> StreamVec<'scope, u64, Alert> {
    input.binary_frontier(control, Pipeline, Pipeline, "ApplyRules", move |_cap, _info| {
        let mut book = RuleBook::with_idle(idle);
        let mut windows: Held<WindowAgg> = BTreeMap::new();
        // Readings that met an early rule's condition, waiting for their key's earlier
        // windows, under a capability for their time.
        let mut early: Vec<(Capability<u64>, EarlyCandidate)> = Vec::new();
        let mut found: Vec<EarlyCandidate> = Vec::new();
        let mut win_buf: Vec<WindowAgg> = Vec::new();
        let mut changes: BTreeMap<u64, Vec<(Control, isize)>> = BTreeMap::new();
        let mut alerts = Vec::new();
        // Alerts from rule changes go out at the change's time, under a kept capability.
        let mut control_cap: Option<Capability<u64>> = None;
        move |(wins, wf), (ctl, cf), output| {
            wins.for_each_stamp(|cap, data| {
                let Some(cap) = cap.retain_least(0) else { return };
                for batch in data {
                    for item in batch.drain(..) {
                        match item {
                            RuleInput::Window(w) => win_buf.push(w),
                            RuleInput::Reading(e) => {
                                if let Some(size) = early_size {
                                    book.early_candidates(&e, size, &dict, &mut found);
                                }
                            }
                        }
                    }
                }
                // Early alerts go out at their window's end - 1, the time the window's own
                // alert would have (recovery's suppression and resume read alert times); the
                // capability is held there, at or above the frontier, while a candidate waits.
                early.extend(found.drain(..).map(|c| (cap.delayed(&(c.end() - 1).max(*cap.time())), c)));
                if !win_buf.is_empty() {
                    windows
                        .entry(*cap.time())
                        .or_insert_with(|| (cap.clone(), Vec::new()))
                        .1
                        .append(&mut win_buf);
                }
            });
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
                            tracing::debug!(episodes = gone, "pending rule episodes of idle series dropped");
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
            // Early candidates whose key's earlier windows have all been evaluated.
            if !early.is_empty() {
                early.retain(|(cap, c)| {
                    if c.start > 0 && !ready(&(c.start - 1)) {
                        return true;
                    }
                    book.fire_early(c, &dict, &mut alerts);
                    if !alerts.is_empty() {
                        Counters::add(&counters.alerts, alerts.len() as u64);
                        if let Some(mut r) =
                            crate::runtime::probe::recorder(crate::runtime::probe::Hop::AlertDecided)
                        {
                            alerts.iter().for_each(|a| r.record(a.early_at.unwrap_or(a.window_end), 1));
                        }
                        output.session(cap).give_container(&mut alerts);
                        alerts.clear();
                    }
                    false
                });
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
