//! The paths the server answers, their queries and their JSON.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use sensorflow_operators::{lock, Counters};

use super::prometheus::metrics_text;
use super::sse::sse;
use super::Body;
use crate::observe::telemetry::Telemetry;

/// The dashboard page, served from the binary.
const DASHBOARD: &str = include_str!("dashboard.html");

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message, "status": status.as_u16() }))
}

/// The value of query parameter `key`, if present.
fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

pub(super) fn route(req: Request<Incoming>, telemetry: &Arc<Telemetry>) -> Response<Body> {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/" | "/index.html" | "/metrics" | "/alerts" | "/healthz" | "/api/stats" | "/api/sparklines"
    );
    if !known {
        return error(StatusCode::NOT_FOUND, &format!("no such path: {path}"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/" | "/index.html" => full(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD),
        "/metrics" => match metrics_text(telemetry) {
            Ok(text) => {
                full(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", text)
            }
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding metrics: {e}")),
        },
        "/healthz" => json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "finished": telemetry.is_finished(),
                "uptime_secs": telemetry.uptime_secs(),
            }),
        ),
        "/alerts" => alerts(&req, telemetry),
        "/api/stats" => json(StatusCode::OK, &stats(telemetry)),
        "/api/sparklines" => {
            let limit = query(&req, "limit").and_then(|v| v.parse().ok()).unwrap_or(12usize).min(64);
            json(StatusCode::OK, &serde_json::Value::Array(telemetry.sparklines(limit)))
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

fn alerts(req: &Request<Incoming>, telemetry: &Arc<Telemetry>) -> Response<Body> {
    let wants_stream = query(req, "stream").is_some_and(|v| v != "0")
        || req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    let after = match query(req, "after") {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => return error(StatusCode::BAD_REQUEST, "after must be a sequence number"),
        },
        None => None,
    };
    if wants_stream {
        // EventSource reconnects with the last id it saw; start after it. A new client
        // starts with what is written from now on unless it asks for `after`.
        let last_id =
            req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let cursor = last_id.or(after).unwrap_or_else(|| telemetry.alerts.last_seq());
        return sse(telemetry.clone(), cursor);
    }
    let limit = match query(req, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) => n.min(10_000),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "limit must be a number"),
    };
    let entries = match after {
        Some(a) => telemetry.alerts.after(a, limit).0,
        None => telemetry.alerts.latest(limit),
    };
    let mut body = String::from("[");
    for (i, (seq, line)) in entries.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        // Each line is a JSON object; add its sequence number in front.
        body.push_str(&format!("{{\"seq\":{seq},"));
        body.push_str(line.strip_prefix('{').unwrap_or(line));
    }
    body.push(']');
    full(StatusCode::OK, "application/json", body)
}

fn stats(t: &Telemetry) -> serde_json::Value {
    let c = &t.counters;
    let by: Vec<serde_json::Value> = t
        .alerts_by_source()
        .into_iter()
        .map(|((source, kind), n)| serde_json::json!({ "source": source, "kind": kind, "count": n }))
        .collect();
    let model = lock(&t.model).clone();
    serde_json::json!({
        "source": t.source,
        "workers": t.workers,
        "process": t.process,
        "started_ms": t.started_ms,
        "uptime_secs": t.uptime_secs(),
        "finished": t.is_finished(),
        "model": model,
        "totals": {
            "records_in": Counters::get(&c.records_in),
            "processed": Counters::get(&c.events_processed),
            "late": Counters::get(&c.late),
            "dead_lettered": Counters::get(&c.dead_lettered),
            "duplicates": Counters::get(&c.duplicates),
            "windows_scored": Counters::get(&c.windows_scored),
            "alerts": t.alerts.last_seq(),
        },
        "latency_us": {
            "p50": t.latency.quantile_bound(0.5),
            "p99": t.latency.quantile_bound(0.99),
        },
        "alerts_by_source": by,
        "history": t.history(),
    })
}
