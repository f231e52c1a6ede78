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

//!
//! The parts: `routes` (paths, queries, JSON answers), `sse` (the alert stream),
//! `prometheus` (the exposition, read from the counters at scrape time).

mod prometheus;
mod routes;
mod sse;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use prometheus::metrics_text;
use routes::route;
pub use routes::{query_param, AlertsQuery};

use crate::observe::telemetry::Telemetry;
use crate::Error;

/// Largest request head accepted (hyper answers 431 beyond it).
const MAX_HEAD: usize = 16 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// How long a finished run waits for SSE clients to receive the last alerts.
const DRAIN: Duration = Duration::from_secs(5);

/// Every response body: a whole body or a stream.
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
