//! The rule book: every rule in force and the episode state of each (rule, device, metric),
//! kept apart from timely so it can be tested alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::control::{Control, DeviceMeta};
use super::glob::glob_match;
use super::rule::Rule;
use crate::alert::{Alert, AlertKey, AlertKind};
use crate::event::{DeviceId, MetricId};
use crate::hash::IdHashMap;
use crate::names::{Dictionary, NameCache};
use crate::ops::window::WindowAgg;
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
        for (i, rule) in new.iter().enumerate() {
            self.by_metric.entry(MetricId::of(&rule.rule.metric).0).or_default().push(i);
        }
        self.rules = new;
    }

    /// Number of rules in force.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
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
