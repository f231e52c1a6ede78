//! The HTTP server inside `sensorflow run --http ADDR`: Prometheus metrics, recent alerts as
//! JSON and server-sent events, health, and the live dashboard.
//!
//! | path             | what                                                               |
//! |------------------|--------------------------------------------------------------------|
//! | `/`              | the dashboard (one HTML page with inline script; no external assets) |
//! | `/metrics`       | Prometheus / OpenMetrics text                                      |
//! | `/alerts`        | recent alerts as a JSON array (`?limit=N`, `?after=SEQ`)            |
//! | `/alerts` + `Accept: text/event-stream` (or `?stream=1`) | every alert as it is written (SSE) |
//! | `/healthz`       | `{"status":"ok",…}`                                                |
//! | `/api/stats`     | totals and once-a-second history for the dashboard                 |
//! | `/api/sparklines`| recent window means of the series that alerted                     |
//!
//! The server runs on its own thread with a single-threaded tokio runtime, so it never takes
//! a core from the workers for long and a client can never block the dataflow: the dataflow
//! appends to [`Telemetry`] and readers copy out of it. Hyper enforces the protocol limits:
//! request heads over 16 KiB get 431, a head not received within 10 s closes the connection,
//! at most 256 connections are served at once (the rest get 503), and each SSE stream pulls
//! from the alert log at its own pace (a reader that falls more than the log's capacity behind
//! is told so with a `gap` event rather than holding memory).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use sensorflow_operators::Counters;

use crate::observe::telemetry::Telemetry;
use crate::Error;

/// The dashboard page, served from the binary.
const DASHBOARD: &str = include_str!("dashboard.html");
/// Largest request head accepted (hyper answers 431 beyond it).
const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// How long a finished run waits for SSE clients to receive the last alerts.
const DRAIN: Duration = Duration::from_secs(5);

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running server; [`HttpServer::shutdown`] (or drop) stops it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free one) and serves `telemetry` from a new thread.
    pub fn start(addr: &str, telemetry: Arc<Telemetry>) -> Result<Self, Error> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::Config(format!("--http {addr}: cannot listen: {e}")))?;
        let local = listener.local_addr().map_err(|e| Error::Config(format!("--http {addr}: {e}")))?;
        listener.set_nonblocking(true).map_err(|e| Error::Config(format!("--http {addr}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(format!("HTTP server runtime: {e}")))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("sensorflow-http".into())
            .spawn(move || runtime.block_on(serve(listener, telemetry, stopped)))
            .map_err(|e| Error::Runtime(format!("HTTP server thread: {e}")))?;
        Ok(HttpServer { addr: local, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open SSE streams deliver what the run wrote (up to a few
    /// seconds), then stops.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    telemetry: Arc<Telemetry>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "sensorflow::http", "HTTP server cannot use its socket: {e}");
            return;
        }
    };
    // Once a second: a sample for the dashboard's charts.
    let sampler_telemetry = telemetry.clone();
    let mut sampler_stop = stopped.clone();
    let sampler = tokio::spawn(async move {
        let mut sampler = sampler_telemetry.sampler();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => { sampler_telemetry.sample(&mut sampler); }
                _ = sampler_stop.changed() => break,
            }
        }
    });
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "sensorflow::http", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            tokio::spawn(refuse(stream));
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(open.clone());
        let telemetry = telemetry.clone();
        let mut conn_stop = stopped.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let service = hyper::service::service_fn(move |req| {
                let telemetry = telemetry.clone();
                async move { Ok::<_, Infallible>(route(req, &telemetry)) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(target: "sensorflow::http", "connection from {peer}: {e}");
                    }
                }
                _ = conn_stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    // Give open connections (SSE readers catching up) their drain time.
    let deadline = tokio::time::Instant::now() + DRAIN;
    while open.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sampler.abort();
}

/// Counts a connection while it is open.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let msg = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(msg)).await;
}

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

fn route(req: Request<Incoming>, telemetry: &Arc<Telemetry>) -> Response<Body> {
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

/// A response body fed by a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Streams every alert after `cursor` as server-sent events (`id:` is the alert's sequence
/// number, `data:` its JSON line, as in the alert file), then `event: end` when the run is over.
fn sse(telemetry: Arc<Telemetry>, mut cursor: u64) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let mut changed = telemetry.alerts.subscribe();
    tokio::spawn(async move {
        if tx.send(Bytes::from_static(b"retry: 1000\n: sensorflow alerts\n\n")).await.is_err() {
            return;
        }
        loop {
            // Mark the current version seen before reading, so no append is missed.
            changed.borrow_and_update();
            let finished = telemetry.is_finished();
            let (entries, gap) = telemetry.alerts.after(cursor, 512);
            if gap {
                let msg = format!("event: gap\ndata: {{\"after\":{cursor}}}\n\n");
                if tx.send(Bytes::from(msg)).await.is_err() {
                    return;
                }
            }
            if !entries.is_empty() {
                let mut chunk = String::new();
                for (seq, line) in &entries {
                    chunk.push_str(&format!("id: {seq}\ndata: {line}\n\n"));
                    cursor = *seq;
                }
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
                continue;
            }
            if finished {
                let _ = tx.send(Bytes::from_static(b"event: end\ndata: {}\n\n")).await;
                return;
            }
            match tokio::time::timeout(Duration::from_secs(15), changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn stats(t: &Telemetry) -> serde_json::Value {
    let c = &t.counters;
    let by: Vec<serde_json::Value> = t
        .alerts_by_source()
        .into_iter()
        .map(|((source, kind), n)| serde_json::json!({ "source": source, "kind": kind, "count": n }))
        .collect();
    let model = t.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
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

/// The Prometheus exposition of `telemetry`.
pub fn metrics_text(telemetry: &Arc<Telemetry>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PipelineCollector(telemetry.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Reads the pipeline's atomics at scrape time.
#[derive(Debug)]
struct PipelineCollector(Arc<Telemetry>);

type Labels = Vec<(&'static str, String)>;

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, f64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &Labels,
    h: &sensorflow_operators::LogHistogram,
) -> std::fmt::Result {
    let (cumulative, sum, count) = h.snapshot();
    // prometheus-client accumulates the buckets itself: hand it per-bucket counts.
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = cumulative
        .iter()
        .map(|&(bound, n)| {
            let own = n - below;
            below = n;
            (bound, own)
        })
        .collect();
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_family(labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

impl Collector for PipelineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let t = &self.0;
        let c = &t.counters;
        let src = || vec![("source", t.source.clone())];
        let per_worker = |f: fn(&sensorflow_operators::WorkerCounters) -> &std::sync::atomic::AtomicU64| {
            c.workers
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let mut l = src();
                    l.push(("worker", (t.process * t.workers + i).to_string()));
                    (l, Counters::get(f(w)))
                })
                .collect::<Vec<_>>()
        };
        counter(
            &mut enc,
            "sensorflow_records_in",
            "Records read by sources (good and bad)",
            &per_worker(|w| &w.records_in),
        )?;
        counter(
            &mut enc,
            "sensorflow_events_out",
            "Events sources passed into the dataflow (not late, not dead-lettered)",
            &per_worker(|w| &w.events_out),
        )?;
        let one = |v: &std::sync::atomic::AtomicU64| [(src(), Counters::get(v))];
        counter(
            &mut enc,
            "sensorflow_events_processed",
            "Events that reached the windows",
            &one(&c.events_processed),
        )?;
        counter(
            &mut enc,
            "sensorflow_late_events",
            "Events behind their partition's watermark",
            &one(&c.late),
        )?;
        counter(
            &mut enc,
            "sensorflow_dead_letters",
            "Records diverted to the dead-letter output",
            &one(&c.dead_lettered),
        )?;
        counter(
            &mut enc,
            "sensorflow_duplicates",
            "Events dropped as duplicates of an earlier (device, seq)",
            &one(&c.duplicates),
        )?;
        counter(
            &mut enc,
            "sensorflow_dedupe_horizon_exceeded",
            "Events too far out of order to de-duplicate (passed on)",
            &one(&c.dedupe_horizon_exceeded),
        )?;
        counter(&mut enc, "sensorflow_windows_closed", "Windows closed", &one(&c.windows_closed))?;
        counter(
            &mut enc,
            "sensorflow_windows_scored",
            "Windows scored by the anomaly model",
            &one(&c.windows_scored),
        )?;
        counter(
            &mut enc,
            "sensorflow_alerts_deduplicated",
            "Alerts a sink had already written and skipped",
            &one(&c.alerts_deduplicated),
        )?;
        let by: Vec<(Labels, u64)> = t
            .alerts_by_source()
            .into_iter()
            .map(|((source, kind), n)| (vec![("rule", source), ("kind", kind.to_string())], n))
            .collect();
        counter(&mut enc, "sensorflow_alerts", "Alerts written, by rule or model and kind", &by)?;
        let parts = c.partitions();
        let lag: Vec<(Labels, f64)> = parts
            .iter()
            .filter(|p| !p.done.load(Ordering::Relaxed))
            .map(|p| {
                let l = vec![
                    ("partition", p.name.clone()),
                    ("worker", (t.process * t.workers + p.worker).to_string()),
                ];
                (l, p.lag_ms() as f64 / 1e3)
            })
            .collect();
        gauge(
            &mut enc,
            "sensorflow_watermark_lag_seconds",
            "Event time between a partition's newest event and its watermark",
            &lag,
        )?;
        let marks: Vec<(Labels, f64)> = parts
            .iter()
            .map(|p| {
                let l = vec![
                    ("partition", p.name.clone()),
                    ("worker", (t.process * t.workers + p.worker).to_string()),
                ];
                (l, p.watermark_ms.load(Ordering::Relaxed) as f64 / 1e3)
            })
            .collect();
        gauge(
            &mut enc,
            "sensorflow_watermark_timestamp_seconds",
            "A partition's watermark (event time, seconds since the epoch)",
            &marks,
        )?;
        histogram(
            &mut enc,
            "sensorflow_ingest_to_alert_seconds",
            "From the watermark passing an alert's window end to the sink writing the alert",
            &src(),
            &t.latency,
        )?;
        histogram(
            &mut enc,
            "sensorflow_scoring_batch_seconds",
            "One anomaly-model batch call",
            &src(),
            &c.scoring_us,
        )?;
        let model = t.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if !model.name.is_empty() {
            let mut m = enc.encode_descriptor(
                "sensorflow_model",
                "The anomaly model in use",
                None,
                MetricType::Info,
            )?;
            m.encode_info(&vec![("model", model.name.clone()), ("version", model.version.clone())])?;
            counter(
                &mut enc,
                "sensorflow_model_reloads",
                "Times the model file changed and was reloaded",
                &[(src(), model.reloads)],
            )?;
        }
        gauge(
            &mut enc,
            "sensorflow_uptime_seconds",
            "Seconds since the run started",
            &[(src(), t.uptime_secs())],
        )?;
        gauge(
            &mut enc,
            "sensorflow_workers",
            "Worker threads in this process",
            &[(vec![("process", t.process.to_string())], t.workers as f64)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_names_every_family_with_its_values() {
        let counters = Counters::for_workers(2);
        let t = Telemetry::new(counters.clone(), "simulator".into(), 2, 0);
        Counters::add(&counters.records_in, 30);
        Counters::add(&counters.workers[1].records_in, 17);
        Counters::add(&counters.late, 3);
        t.latency.record(300);
        let gauge = counters.register_partition("kafka:s/0".into(), 1);
        gauge.max_ts_ms.store(10_000, Ordering::Relaxed);
        gauge.watermark_ms.store(7_500, Ordering::Relaxed);
        let text = metrics_text(&t).expect("encodes");
        for line in [
            "sensorflow_records_in_total{source=\"simulator\",worker=\"1\"} 17",
            "sensorflow_records_in_total{source=\"simulator\",worker=\"0\"} 0",
            "sensorflow_late_events_total{source=\"simulator\"} 3",
            "sensorflow_watermark_lag_seconds{partition=\"kafka:s/0\",worker=\"1\"} 2.5",
            "sensorflow_ingest_to_alert_seconds_bucket{le=\"0.0005\",source=\"simulator\"} 1",
            "sensorflow_ingest_to_alert_seconds_bucket{le=\"+Inf\",source=\"simulator\"} 1",
            "sensorflow_ingest_to_alert_seconds_count{source=\"simulator\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
