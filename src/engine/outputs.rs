//! What the graph's outputs do with each batch: alerts through the de-duplicating writer
//! (with their log line, latency and counts), dead letters and late events through their
//! writers, and copies into [`super::Collected`] when the caller keeps them.

use std::time::{Instant, SystemTime};

use sensorflow_operators::runtime::probe;
use sensorflow_operators::{lock, Alert, AlertKind, Counters, DeadLetter, LateEvent};

use super::worker::WorkerReport;
use super::Shared;
use crate::observe::logging::alert_span;

pub(super) fn write_alerts(shared: &Shared, alerts: &[Alert], report: &mut WorkerReport) {
    if alerts.is_empty() {
        return;
    }
    let now = shared.clock.now_nanos();
    let emit = tracing::info_span!(target: "sensorflow::alerts", "emit_alerts", alerts = alerts.len());
    let _emit = emit.enter();
    let mut written: Vec<&Alert> = Vec::new();
    let mut writer = lock(&shared.alerts);
    for a in alerts {
        let span = shared.ledger.as_ref().map(|l| alert_span(l, a));
        let _span = span.as_ref().map(|s| s.enter());
        match writer.write(a) {
            Ok(true) => {
                tracing::info!(
                    target: "sensorflow::alerts",
                    id = %a.id(),
                    kind = ?a.kind,
                    device = &*a.device,
                    metric = &*a.metric,
                    rule = &*a.key.source,
                    value = a.value,
                    threshold = a.threshold,
                    severity = &*a.severity,
                    "alert"
                );
                if shared.telemetry.is_some() {
                    written.push(a);
                }
            }
            Ok(false) => {
                Counters::add(&shared.counters.alerts_deduplicated, 1);
                continue;
            }
            Err(e) => {
                shared.fail(e);
                return;
            }
        }
        if !report.by_rule.contains_key(&*a.key.source) {
            report.by_rule.insert(a.key.source.to_string(), (0, 0));
        }
        let Some(e) = report.by_rule.get_mut(&*a.key.source) else { continue };
        match a.kind {
            AlertKind::Fired => {
                e.0 += 1;
                if matches!(shared.config.source, crate::connectors::SourceConfig::Simulator(_)) {
                    report.fired.push((
                        a.device.clone(),
                        a.metric.clone(),
                        a.key.window_start,
                        a.key.source.clone(),
                    ));
                }
            }
            AlertKind::Cleared => e.1 += 1,
        }
        if let Some(due) = shared.pace.as_ref().and_then(|p| p.due(a.window_end)) {
            let _ =
                report.due_latency.record(Instant::now().saturating_duration_since(due).as_micros() as u64);
        }
        if let Some(ingested) = shared.clock.passed_at(a.window_end) {
            let us = now.saturating_sub(ingested) / 1000;
            let _ = report.latency.record(us);
            if let Some(t) = &shared.telemetry {
                t.latency.record(us);
            }
        }
    }
    if let Some(mut r) = probe::recorder(probe::Hop::AlertWritten) {
        alerts.iter().for_each(|a| r.record(a.window_end, 1));
    }
    // Still under the writer's lock, so `/alerts` has the alerts in alert-file order.
    if let Some(t) = &shared.telemetry {
        t.alerts_written(&written);
    }
    drop(writer);
    if let Some(c) = &shared.collected {
        lock(&c.alerts).extend_from_slice(alerts);
        let wall =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        lock(&c.written_at_ms).extend(alerts.iter().map(|_| wall));
    }
}

pub(super) fn write_dead_letters(shared: &Shared, letters: &[DeadLetter]) {
    if let Some(c) = &shared.collected {
        lock(&c.dead).extend_from_slice(letters);
    }
    let mut dead = lock(&shared.dead);
    for d in letters {
        if let Err(e) = dead.dead_letter(d) {
            shared.fail(e);
            return;
        }
    }
}

pub(super) fn write_late(shared: &Shared, late: &[LateEvent]) {
    if let Some(c) = &shared.collected {
        lock(&c.late).extend_from_slice(late);
    }
    let mut writer = lock(&shared.late);
    for l in late {
        if let Err(e) = writer.late(l, &shared.dict) {
            shared.fail(e);
            return;
        }
    }
}
