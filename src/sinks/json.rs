//! How alerts, dead letters and late events look as JSON lines.

use sensorflow_operators::{Alert, AlertKind, DeadLetter, Dictionary, LateEvent};
use serde::Serialize;

use crate::timefmt::format_datetime;

/// One alert as a JSON line.
#[derive(Serialize)]
struct AlertLine<'a> {
    id: String,
    kind: AlertKind,
    device: &'a str,
    metric: &'a str,
    rule: &'a str,
    condition: &'a str,
    value: f64,
    threshold: f64,
    episode_start: u64,
    window_start: u64,
    window_end: u64,
    window_start_time: String,
    severity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    /// Only on alerts a rule fired before its window ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    early_at: Option<u64>,
}

/// `x` to `digits` significant decimal digits, for display (windows keep more bits).
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    let r = (x * scale).round() / scale;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// Renders an alert as one JSON line (no newline).
pub fn alert_json(a: &Alert) -> String {
    let line = AlertLine {
        id: a.id(),
        kind: a.kind,
        device: &a.device,
        metric: &a.metric,
        rule: &a.key.source,
        condition: &a.condition,
        value: round_sig(a.value, 12),
        threshold: a.threshold,
        episode_start: a.key.window_start,
        window_start: a.window_start,
        window_end: a.window_end,
        window_start_time: format_datetime(a.window_start),
        severity: &a.severity,
        site: a.site.as_deref(),
        owner: a.owner.as_deref(),
        early_at: a.early_at,
    };
    // Serializing this struct cannot fail: no maps with non-string keys, floats become null.
    serde_json::to_string(&line).unwrap_or_default()
}

#[derive(Serialize)]
struct DeadLine<'a> {
    source: &'a str,
    position: u64,
    reason: &'a str,
    raw: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_hex: Option<String>,
}

/// Renders a dead letter as one JSON line; raw bytes that are not UTF-8 are also kept in hex.
pub fn dead_letter_json(d: &DeadLetter) -> String {
    let raw_hex =
        std::str::from_utf8(&d.raw).is_err().then(|| d.raw.iter().map(|b| format!("{b:02x}")).collect());
    let line = DeadLine {
        source: &d.source,
        position: d.position,
        reason: &d.reason,
        raw: String::from_utf8_lossy(&d.raw),
        raw_hex,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Renders a late event as one JSON line with names resolved.
pub fn late_json(l: &LateEvent, dict: &Dictionary) -> String {
    serde_json::json!({
        "device": dict.device_name(l.event.device).as_ref(),
        "metric": dict.metric_name(l.event.metric).as_ref(),
        "ts": l.event.ts,
        "value": l.event.value,
        "seq": l.event.seq,
        "watermark": l.watermark,
    })
    .to_string()
}
