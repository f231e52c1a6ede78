//! The rule book: every rule in force and the episode state of each (rule, device, metric),
//! kept apart from timely so it can be tested alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::control::{Control, DeviceMeta};
use super::glob::glob_match;
use super::rule::Rule;
use crate::alert::{Alert, AlertKey, AlertKind};
use crate::event::{DeviceId, Event, MetricId};
use crate::hash::IdHashMap;
use crate::names::{Dictionary, NameCache};
use crate::ops::window::{Field, WindowAgg};
use crate::runtime::evict::{Evictor, StateIdle};

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
    /// Drops the pending episodes of series gone idle.
    evictor: Evictor,
    /// Rules with `early = true` that can fire early, by metric.
    early_by_metric: IdHashMap<u64, Vec<usize>>,
    /// Per (rule, device, metric) of an early rule: the open window this key's readings were
    /// last in ([`EarlySeen`]).
    early_seen: IdHashMap<(usize, u64, u64), EarlySeen>,
    /// Counts rule changes: a candidate found under other rules never fires.
    generation: u64,
}

/// What an early rule has seen of one key's open window.
#[derive(Clone, Copy, Debug)]
struct EarlySeen {
    /// The window's start.
    start: u64,
    /// Readings so far (for `count` rules).
    count: u64,
    /// A candidate was made (at most one per key and window).
    candidate: bool,
    /// Fired (or found an episode already open): nothing more to do in this window.
    done: bool,
}

/// A reading that made an early rule's condition true on its (still open) window; it fires
/// once every earlier window of its key has been evaluated ([`RuleBook::fire_early`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyCandidate {
    rule: usize,
    device: u64,
    metric: u64,
    /// The window's start.
    pub start: u64,
    /// The window's end.
    end: u64,
    /// What the window held at the reading.
    value: f64,
    /// The reading's event time.
    at: u64,
    /// The rule book's generation when the candidate was made.
    generation: u64,
}

impl EarlyCandidate {
    /// The window's end.
    pub fn end(&self) -> u64 {
        self.end
    }
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
        self.early_by_metric.clear();
        self.early_seen.clear();
        self.generation += 1;
        for (i, rule) in new.iter().enumerate() {
            self.by_metric.entry(MetricId::of(&rule.rule.metric).0).or_default().push(i);
            if rule.rule.early && rule.rule.can_fire_early() {
                self.early_by_metric.entry(MetricId::of(&rule.rule.metric).0).or_default().push(i);
            }
        }
        self.rules = new;
    }

    /// Number of rules in force.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether any rule in force fires early.
    pub fn has_early(&self) -> bool {
        !self.early_by_metric.is_empty()
    }

    /// Counts `e` into its open tumbling window (`size_ms` long) for every early rule on its
    /// metric, and adds a candidate for each whose condition the window now meets.
    pub fn early_candidates(
        &mut self,
        e: &Event,
        size_ms: u64,
        dict: &Dictionary,
        out: &mut Vec<EarlyCandidate>,
    ) {
        let RuleBook { rules, early_by_metric, early_seen, generation, .. } = self;
        let Some(indices) = early_by_metric.get(&e.metric.0) else { return };
        let start = e.ts - e.ts % size_ms.max(1);
        let fresh = EarlySeen { start, count: 0, candidate: false, done: false };
        for &ri in indices {
            let rule = &rules[ri].rule;
            // Not cached: in a cluster a device's name may not have arrived yet (the window's end
            // matches it later, with the name known).
            if let Some(pattern) = &rule.devices {
                if !glob_match(pattern, &dict.device_name(e.device)) {
                    continue;
                }
            }
            let seen = early_seen.entry((ri, e.device.0, e.metric.0)).or_insert(fresh);
            match seen.start.cmp(&start) {
                std::cmp::Ordering::Less => *seen = fresh,
                // A reading of a window this key has left behind: that window decides at its end.
                std::cmp::Ordering::Greater => continue,
                std::cmp::Ordering::Equal => {}
            }
            seen.count += 1;
            if seen.done || seen.candidate {
                continue;
            }
            let value = match rule.field {
                Field::Count => seen.count as f64,
                _ => e.value,
            };
            if rule.op.holds(value, rule.value.0) {
                seen.candidate = true;
                out.push(EarlyCandidate {
                    rule: ri,
                    device: e.device.0,
                    metric: e.metric.0,
                    start,
                    end: start + size_ms,
                    value,
                    at: e.ts,
                    generation: *generation,
                });
            }
        }
    }

    /// Fires `c` unless its key already has an open episode or fired in this window: call once
    /// every window of the key ending at or before `c.start` has been evaluated. The alert is
    /// the one [`RuleBook::evaluate`] would make at the window's end (same key), marked
    /// early; the episode is then open, so the window's end makes no second one.
    pub fn fire_early(&mut self, c: &EarlyCandidate, dict: &Dictionary, alerts: &mut Vec<Alert>) {
        let key = (c.rule, c.device, c.metric);
        if c.generation != self.generation {
            return;
        }
        let Some(seen) = self.early_seen.get_mut(&key) else { return };
        if seen.start != c.start || seen.done {
            return;
        }
        seen.done = true;
        if self.phases.contains_key(&key) {
            return;
        }
        let Some(compiled) = self.rules.get(c.rule).cloned() else { return };
        let since = self.resumed_since(c.device, &compiled, c.start);
        let (device, metric) = (DeviceId(c.device), MetricId(c.metric));
        let span = (since, c.start, c.end);
        let mut alert = make_alert(
            &self.meta,
            &mut self.names,
            &compiled,
            device,
            metric,
            AlertKind::Fired,
            span,
            c.value,
            dict,
        );
        alert.early_at = Some(c.at);
        alerts.push(alert);
        self.phases.insert(key, Phase::Active { since, last_end: c.end });
    }

    /// The episode start for an episode of `rule` on `device` beginning at `since`: an earlier
    /// run's open episode continues with its own start.
    fn resumed_since(&mut self, device: u64, rule: &CompiledRule, since: u64) -> u64 {
        if self.resumed.is_empty() {
            return since;
        }
        match self.resumed.remove(&(device, rule.rule.name.clone())) {
            Some((old, resume_at)) if since < resume_at => old,
            _ => since,
        }
    }

    /// A rule book whose pending episodes are dropped once their series has been idle for
    /// `idle` (an active one stays until it clears).
    pub fn with_idle(idle: StateIdle) -> Self {
        RuleBook { evictor: Evictor::new(idle), ..RuleBook::default() }
    }

    /// Drops pending episodes idle past the idle time (and the device-glob cache, which is
    /// rebuilt as devices come), when a sweep is due; returns how many episodes went.
    pub fn evict_idle(&mut self) -> usize {
        let Some(cutoff) = self.evictor.due() else { return 0 };
        let before = self.phases.len();
        self.phases.retain(|_, p| !matches!(p, Phase::Pending { last_end, .. } if *last_end < cutoff));
        self.device_match.clear();
        self.device_match.shrink_to_fit();
        before - self.phases.len()
    }

    /// Evaluates every rule on `w` (windows of one key must come in time order).
    pub fn evaluate(&mut self, w: &WindowAgg, dict: &Dictionary, alerts: &mut Vec<Alert>) {
        self.evictor.saw(w.end);
        let RuleBook { rules, by_metric, meta, phases, device_match, names, resumed, early_seen, .. } = self;
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
            if rule.early && early_seen.get(&key).is_some_and(|s| s.start <= w.start) {
                early_seen.remove(&key);
            }
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
                            // Also when the re-read episode seems to start before `old`: the
                            // first window re-read after a restart can lack its earlier events.
                            Some((old, resume_at)) if since < resume_at => old,
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
        early_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::window::Field;
    use crate::rules::{Comparator, Rule, TotalF64};

    fn window(dict: &Dictionary, start: u64, max: f64) -> WindowAgg {
        WindowAgg {
            device: dict.device("d"),
            metric: dict.metric("temp"),
            start,
            end: start + 1000,
            count: 1,
            min: max,
            max,
            mean: max,
            variance: 0.0,
            first: max,
            last: max,
        }
    }

    #[test]
    fn a_resumed_episode_keeps_its_key_when_the_rereading_makes_it_start_earlier() {
        let dict = Dictionary::default();
        let mut book = RuleBook::default();
        let mut alerts = Vec::new();
        let rule = Rule {
            name: "hot".into(),
            metric: "temp".into(),
            devices: None,
            field: Field::Max,
            op: Comparator::Above,
            value: TotalF64(80.0),
            hysteresis: TotalF64(0.0),
            min_duration_ms: 2000,
            severity: "warning".into(),
            early: false,
        };
        let open =
            Control::OpenEpisode { device: "d".into(), rule: "hot".into(), since: 11_000, resume_at: 20_000 };
        book.apply(&[(Control::Rule(rule), 1), (open, 1)], &dict, &mut alerts);
        // The re-read input holds from 10 s (its first window lacks the earlier, cooler readings).
        for (start, max) in [(10_000, 90.0), (11_000, 90.0), (12_000, 90.0), (13_000, 50.0)] {
            book.evaluate(&window(&dict, start, max), &dict, &mut alerts);
        }
        let got: Vec<(AlertKind, u64)> = alerts.iter().map(|a| (a.kind, a.key.window_start)).collect();
        assert_eq!(got, vec![(AlertKind::Fired, 11_000), (AlertKind::Cleared, 11_000)]);
    }
}
