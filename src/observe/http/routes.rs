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
    query_param(req.uri().query(), key)
}

/// The value of parameter `key` in the query string `query` (the part after `?`), if present.
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// What a request to `/alerts` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertsQuery {
    /// A stream of server-sent events rather than one JSON array.
    pub stream: bool,
    /// Alerts after this sequence number (`after=`, or the stream's `Last-Event-ID`).
    pub after: Option<u64>,
    /// At most this many alerts (`limit=`, 100 by default, at most 10,000).
    pub limit: usize,
}

impl AlertsQuery {
    /// Reads the query string and the `Accept` and `Last-Event-ID` headers; `Err` is the
    /// 400 message.
    pub fn parse(
        query: Option<&str>,
        accept: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Self, &'static str> {
        let stream = query_param(query, "stream").is_some_and(|v| v != "0")
            || accept.is_some_and(|v| v.contains("text/event-stream"));
        let after = match query_param(query, "after") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| "after must be a sequence number")?),
            None => None,
        };
        let limit = match query_param(query, "limit").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) => n.min(10_000),
            Some(Err(_)) => return Err("limit must be a number"),
        };
        // EventSource reconnects with the last id it saw; start after it.
        let after = if stream { last_event_id.and_then(|v| v.parse().ok()).or(after) } else { after };
        Ok(AlertsQuery { stream, after, limit })
    }
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
    let header = |name: &str| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let q = match AlertsQuery::parse(req.uri().query(), header(ACCEPT.as_str()), header("last-event-id")) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if q.stream {
        // A new client starts with what is written from now on unless it asks for `after`.
        let cursor = q.after.unwrap_or_else(|| telemetry.alerts.last_seq());
        return sse(telemetry.clone(), cursor);
    }
    let (after, limit) = (q.after, q.limit);
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
