//! Threshold rules over windows, with hysteresis and minimum duration, changeable while running.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::alert::{Alert, AlertKey, AlertKind};
use crate::event::{DeviceId, MetricId};
use crate::hash::IdHashMap;
use crate::metrics::Counters;
use crate::names::Dictionary;
use crate::window::{Field, WindowAgg};

/// An `f64` with a total order, so rules can live in differential collections.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TotalF64(pub f64);

impl PartialEq for TotalF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for TotalF64 {}
impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TotalF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for TotalF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// How a window's number is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Comparator {
    /// `>`
    #[serde(rename = ">")]
    Above,
    /// `>=`
    #[serde(rename = ">=")]
    AtLeast,
    /// `<`
    #[serde(rename = "<")]
    Below,
    /// `<=`
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparator {
    /// Whether `v` meets the condition against `threshold`.
    #[inline]
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Comparator::Above => v > threshold,
            Comparator::AtLeast => v >= threshold,
            Comparator::Below => v < threshold,
            Comparator::AtMost => v <= threshold,
        }
    }

    /// Whether an active condition has ended: `v` is back past the threshold by `hysteresis`.
    #[inline]
    pub fn cleared(self, v: f64, threshold: f64, hysteresis: f64) -> bool {
        match self {
            Comparator::Above | Comparator::AtLeast => !self.holds(v, threshold - hysteresis),
            Comparator::Below | Comparator::AtMost => !self.holds(v, threshold + hysteresis),
        }
    }

    /// The operator as written in rules files.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Above => ">",
            Comparator::AtLeast => ">=",
            Comparator::Below => "<",
            Comparator::AtMost => "<=",
        }
    }
}

/// A threshold rule: fires once when `field(window) op value` has held for `min_duration_ms`,
/// clears once when the value is back past `value ∓ hysteresis`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Unique name; part of alert keys.
    pub name: String,
    /// Metric name it applies to.
    pub metric: String,
    /// Device name pattern (`*` any run, `?` one character); `None` matches every device.
    pub devices: Option<String>,
    /// Which window number to compare.
    pub field: Field,
    /// Comparison.
    pub op: Comparator,
    /// Threshold.
    pub value: TotalF64,
    /// Clearing band (>= 0).
    pub hysteresis: TotalF64,
    /// How long the condition must hold before the alert fires, ms (0: first window).
    pub min_duration_ms: u64,
    /// Copied into alerts.
    pub severity: String,
}

impl Rule {
    fn condition(&self) -> String {
        format!("{} {} {}", self.field.name(), self.op.symbol(), self.value.0)
    }
}

/// Site and owner of a device, joined into its alerts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// Device name.
    pub device: String,
    /// Where it is.
    pub site: Option<String>,
    /// Who looks after it.
    pub owner: Option<String>,
}

/// A change to what the rule operator knows: the contents of a differential collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Control {
    /// A threshold rule.
    Rule(Rule),
    /// Metadata of one device.
    Device(DeviceMeta),
    /// A device name seen by some process (cluster mode: each process learns every name).
    DeviceName(String),
    /// A metric name seen by some process.
    MetricName(String),
    /// An episode an earlier run fired and had not cleared when it stopped (read back from
    /// its alert output). If the same rule fires for the device in a window starting before
    /// `resume_at` (where the earlier run's output ended), that is this episode continuing:
    /// it keeps the earlier key, so its `Cleared` matches the `Fired` already written.
    OpenEpisode {
        /// Device name.
        device: String,
        /// Rule name.
        rule: String,
        /// The episode's key (start of its first window), ms.
        since: u64,
        /// The earlier run's output frontier, ms.
        resume_at: u64,
    },
}

/// Matches `name` against a pattern with `*` (any run) and `?` (any one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Condition held since `since` (window start); not yet long enough.
    Pending { since: u64, last_end: u64 },
    /// Alert fired for the episode that began at `since`.
    Active { since: u64, last_end: u64 },
}

/// The per-(rule, device, metric) state machine, separate from timely so it can be tested alone.
///
/// Rules are held in a vector and indexed by metric; per-key state lives in a hash map keyed
/// by (rule index, device, metric), so evaluating a window costs a few hash probes and no
/// allocation unless an alert is made.
#[derive(Debug, Default)]
pub struct RuleBook {
    rules: Vec<Arc<CompiledRule>>,
    counts: BTreeMap<Rule, isize>,
    by_metric: IdHashMap<u64, Vec<usize>>,
    meta: IdHashMap<u64, MetaStrings>,
    meta_counts: BTreeMap<DeviceMeta, isize>,
    phases: IdHashMap<(usize, u64, u64), Phase>,
    device_match: IdHashMap<(usize, u64), bool>,
    names: NameCache,
    /// Open episodes of an earlier run, by (device, rule name): (since, resume_at).
    resumed: HashMap<(u64, String), (u64, u64)>,
}

/// A rule with the strings its alerts carry, made once.
#[derive(Debug, PartialEq)]
struct CompiledRule {
    rule: Rule,
    name: Arc<str>,
    condition: Arc<str>,
    severity: Arc<str>,
}

impl CompiledRule {
    fn new(rule: Rule) -> Self {
        CompiledRule {
            name: Arc::from(rule.name.as_str()),
            condition: Arc::from(rule.condition()),
            severity: Arc::from(rule.severity.as_str()),
            rule,
        }
    }
}

/// Worker-local copies of names, so making alerts does not contend on the shared dictionary.
#[derive(Debug, Default)]
struct NameCache {
    devices: IdHashMap<u64, Arc<str>>,
    metrics: IdHashMap<u64, Arc<str>>,
}

impl NameCache {
    fn device(&mut self, id: DeviceId, dict: &Dictionary) -> Arc<str> {
        self.devices.entry(id.0).or_insert_with(|| dict.device_name(id)).clone()
    }

    fn metric(&mut self, id: MetricId, dict: &Dictionary) -> Arc<str> {
        self.metrics.entry(id.0).or_insert_with(|| dict.metric_name(id)).clone()
    }
}

/// Site and owner as shared strings.
#[derive(Clone, Debug, PartialEq)]
struct MetaStrings {
    site: Option<Arc<str>>,
    owner: Option<Arc<str>>,
}

impl RuleBook {
    /// Applies changes to rules and metadata that happen at one time; `alerts` receives a
    /// `Cleared` for every active alert whose rule was removed or changed.
    pub fn apply(&mut self, changes: &[(Control, isize)], dict: &Dictionary, alerts: &mut Vec<Alert>) {
        let mut rules_changed = false;
        let mut touched_meta = BTreeSet::new();
        for (change, diff) in changes {
            match change {
                Control::Rule(r) => {
                    *self.counts.entry(r.clone()).or_insert(0) += diff;
                    rules_changed = true;
                }
                Control::Device(m) => {
                    *self.meta_counts.entry(m.clone()).or_insert(0) += diff;
                    touched_meta.insert(m.device.clone());
                }
                Control::DeviceName(name) => {
                    dict.device(name);
                }
                Control::MetricName(name) => {
                    dict.metric(name);
                }
                Control::OpenEpisode { device, rule, since, resume_at } => {
                    let key = (DeviceId::of(device).0, rule.clone());
                    if *diff > 0 {
                        self.resumed.insert(key, (*since, *resume_at));
                    } else {
                        self.resumed.remove(&key);
                    }
                }
            }
        }
        self.counts.retain(|_, c| *c > 0);
        self.meta_counts.retain(|_, c| *c > 0);
        for device in touched_meta {
            let id = DeviceId::of(&device).0;
            match self.meta_counts.keys().find(|m| m.device == device) {
                Some(m) => {
                    let strings = MetaStrings {
                        site: m.site.as_deref().map(Arc::from),
                        owner: m.owner.as_deref().map(Arc::from),
                    };
                    self.meta.insert(id, strings);
                }
                None => {
                    self.meta.remove(&id);
                }
            }
        }
        if rules_changed {
            self.reindex(dict, alerts);
        }
    }

    /// Rebuilds the rule index; state of unchanged rules carries over, episodes of changed or
    /// removed rules end with a `Cleared` alert.
    fn reindex(&mut self, dict: &Dictionary, alerts: &mut Vec<Alert>) {
        let mut seen = BTreeSet::new();
        let new: Vec<Arc<CompiledRule>> = self
            .counts
            .keys()
            .filter(|r| seen.insert(r.name.clone()))
            .map(|r| Arc::new(CompiledRule::new(r.clone())))
            .collect();
        let remap: Vec<Option<usize>> =
            self.rules.iter().map(|old| new.iter().position(|r| r.rule == old.rule)).collect();
        let phases = std::mem::take(&mut self.phases);
        let mut ended: Vec<_> = Vec::new();
        for ((ri, d, m), phase) in phases {
            match remap[ri] {
                Some(nri) => {
                    self.phases.insert((nri, d, m), phase);
                }
                None => {
                    if let Phase::Active { since, last_end } = phase {
                        ended.push((ri, d, m, since, last_end));
                    }
                }
            }
        }
        ended.sort_unstable();
        for (ri, d, m, since, last_end) in ended {
            let rule = self.rules[ri].clone();
            let (device, metric) = (DeviceId(d), MetricId(m));
            let names = &mut self.names;
            let span = (since, last_end, last_end);
            alerts.push(make_alert(
                &self.meta,
                names,
                &rule,
                device,
                metric,
                AlertKind::Cleared,
                span,
                f64::NAN,
                dict,
            ));
        }
        self.device_match = self
            .device_match
            .drain()
            .filter_map(|((ri, d), matched)| remap[ri].map(|nri| ((nri, d), matched)))
            .collect();
        self.by_metric.clear();
        for (i, rule) in new.iter().enumerate() {
            self.by_metric.entry(MetricId::of(&rule.rule.metric).0).or_default().push(i);
        }
        self.rules = new;
    }

    /// Number of rules in force.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Evaluates every rule on `w` (windows of one key must come in time order).
    pub fn evaluate(&mut self, w: &WindowAgg, dict: &Dictionary, alerts: &mut Vec<Alert>) {
        let RuleBook { rules, by_metric, meta, phases, device_match, names, resumed, .. } = self;
        let Some(indices) = by_metric.get(&w.metric.0) else { return };
        for &ri in indices {
            let compiled = &rules[ri];
            let rule = &compiled.rule;
            if let Some(pattern) = &rule.devices {
                let matched = *device_match
                    .entry((ri, w.device.0))
                    .or_insert_with(|| glob_match(pattern, &dict.device_name(w.device)));
                if !matched {
                    continue;
                }
            }
            let v = w.field(rule.field);
            let key = (ri, w.device.0, w.metric.0);
            let holds = rule.op.holds(v, rule.value.0);
            let mut alert = |kind, since| {
                let span = (since, w.start, w.end);
                alerts.push(make_alert(meta, names, compiled, w.device, w.metric, kind, span, v, dict));
            };
            let next = match phases.get(&key).copied() {
                None => holds.then_some(Phase::Pending { since: w.start, last_end: w.end }),
                Some(Phase::Pending { since, last_end }) => match (holds, w.start <= last_end) {
                    (false, _) => None,
                    (true, true) => Some(Phase::Pending { since, last_end: w.end }),
                    // A gap (no window for this key) restarts the duration.
                    (true, false) => Some(Phase::Pending { since: w.start, last_end: w.end }),
                },
                Some(Phase::Active { since, .. }) => {
                    if rule.op.cleared(v, rule.value.0, rule.hysteresis.0) {
                        alert(AlertKind::Cleared, since);
                        None
                    } else {
                        Some(Phase::Active { since, last_end: w.end })
                    }
                }
            };
            let next = match next {
                Some(Phase::Pending { since, last_end }) if last_end - since >= rule.min_duration_ms => {
                    // The continuation of an earlier run's open episode keeps its key.
                    let since = match resumed.is_empty() {
                        true => since,
                        false => match resumed.remove(&(w.device.0, compiled.rule.name.clone())) {
                            Some((old, resume_at)) if old <= since && since < resume_at => old,
                            _ => since,
                        },
                    };
                    alert(AlertKind::Fired, since);
                    Some(Phase::Active { since, last_end })
                }
                other => other,
            };
            match next {
                Some(p) => {
                    phases.insert(key, p);
                }
                None => {
                    phases.remove(&key);
                }
            }
        }
    }
}

/// Builds an alert; `span` is (episode start, window start, window end).
#[allow(clippy::too_many_arguments)]
fn make_alert(
    meta: &IdHashMap<u64, MetaStrings>,
    names: &mut NameCache,
    rule: &CompiledRule,
    device: DeviceId,
    metric: MetricId,
    kind: AlertKind,
    span: (u64, u64, u64),
    value: f64,
    dict: &Dictionary,
) -> Alert {
    let meta = meta.get(&device.0);
    let (since, start, end) = span;
    Alert {
        key: AlertKey { device, source: rule.name.clone(), window_start: since },
        kind,
        device: names.device(device, dict),
        metric_id: metric,
        metric: names.metric(metric, dict),
        value,
        threshold: rule.rule.value.0,
        condition: rule.condition.clone(),
        window_start: start,
        window_end: end,
        severity: rule.severity.clone(),
        site: meta.and_then(|m| m.site.clone()),
        owner: meta.and_then(|m| m.owner.clone()),
    }
}

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
    ///         .apply_rules(control, d, Counters::shared())
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
    ) -> StreamVec<'scope, u64, Alert>;
}

impl<'scope> ApplyRules<'scope> for StreamVec<'scope, u64, WindowAgg> {
    fn apply_rules(
        self,
        control: StreamVec<'scope, u64, (Control, u64, isize)>,
        dict: Dictionary,
        counters: Arc<Counters>,
    ) -> StreamVec<'scope, u64, Alert> {
        self.binary_frontier(control, Pipeline, Pipeline, "ApplyRules", move |_cap, _info| {
            let mut book = RuleBook::default();
            let mut windows: BTreeMap<u64, (Capability<u64>, Vec<WindowAgg>)> = BTreeMap::new();
            let mut changes: BTreeMap<u64, Vec<(Control, isize)>> = BTreeMap::new();
            let mut alerts = Vec::new();
            // Alerts from rule changes go out at the change's time, under a kept capability.
            let mut control_cap: Option<Capability<u64>> = None;
            move |(wins, wf), (ctl, cf), output| {
                wins.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    let slot = windows.entry(*cap.time()).or_insert_with(|| (cap, Vec::new()));
                    for batch in data {
                        slot.1.append(batch);
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
                            Counters::add(&counters.alerts, alerts.len() as u64);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("dev-*", "dev-001"));
        assert!(glob_match("*", ""));
        assert!(glob_match("d?v-0*1", "dev-001"));
        assert!(!glob_match("dev-?", "dev-10"));
        assert!(glob_match("*-1*", "dev-10"));
        assert!(!glob_match("plant", "plant-a"));
    }

    #[test]
    fn comparator_hysteresis() {
        assert!(Comparator::Above.holds(81.0, 80.0));
        assert!(!Comparator::Above.cleared(79.0, 80.0, 2.0), "inside the band stays active");
        assert!(Comparator::Above.cleared(78.0, 80.0, 2.0));
        assert!(Comparator::Below.cleared(12.5, 10.0, 2.0));
        assert!(!Comparator::Below.cleared(11.0, 10.0, 2.0));
    }
}
