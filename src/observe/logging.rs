//! Structured logs (`tracing`, filtered by `RUST_LOG`) and, on request, OpenTelemetry traces
//! over OTLP/HTTP.
//!
//! Logs go to stderr. With no `RUST_LOG` the filter is [`DEFAULT_FILTER`]: sensorflow's own
//! notices at info, other crates at warn, and the per-alert lines (`sensorflow::alerts`, one
//! line per alert at info) off, because a replay can write a million alerts a second; turn
//! them on with `RUST_LOG=info,sensorflow::alerts=info`.
//!
//! With `--otlp-endpoint URL` three kinds of spans are exported (JSON over HTTP to
//! `URL/v1/traces`, batched on the SDK's own thread): `source_batch` (partition, worker,
//! batch number, events, dead letters, late events), `score_batch` (model, windows) and
//! `alert` (alert id, device, metric, rule, and the partition and batch that carried the
//! device's newest events in the alert's window, plus a span link to that `source_batch`).
//! Batches are found through [`BatchLedger`], which the sources fill only while exporting.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanContext, TracerProvider as _};
use sensorflow_operators::{lock, BatchHook, BatchInfo};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::Error;

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str =
    "warn,sensorflow=info,sensorflow::alerts=off,sensorflow::source=off,sensorflow::score=off";

/// Spans waiting for export at most (beyond this, new spans are dropped).
const SPAN_QUEUE: usize = 65_536;

/// Keeps the trace exporter alive; dropping it flushes the spans still queued.
#[derive(Debug, Default)]
pub struct Logging {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Logging {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("sensorflow: could not flush traces: {e}");
            }
        }
    }
}

/// The OTLP/HTTP traces URL for an endpoint given as a base (`http://host:4318`) or in full.
pub fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_string()
    } else {
        format!("{e}/v1/traces")
    }
}

/// Installs the process's log subscriber (once; later calls keep the first) and, given an
/// endpoint, the OTLP trace exporter.
pub fn init(otlp_endpoint: Option<&str>) -> Result<Logging, Error> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colour only on a terminal: a log written to a file or a pipe must be plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .with_filter(filter());
    let Some(endpoint) = otlp_endpoint else {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        return Ok(Logging::default());
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Config(format!("--otlp-endpoint {endpoint}: {e}")))?;
    // A replay makes thousands of source batches a second: queue generously (spans over the
    // queue are dropped, never waited for) and export in large requests.
    let batches = opentelemetry_sdk::trace::BatchConfigBuilder::default()
        .with_max_queue_size(SPAN_QUEUE)
        .with_max_export_batch_size(2048)
        .with_scheduled_delay(std::time::Duration::from_millis(500))
        .build();
    let exporter =
        Reporting { inner: exporter, endpoint: traces_url(endpoint), failing: AtomicBool::new(false) };
    let processor =
        opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("sensorflow").build())
        .build();
    let tracer = provider.tracer("sensorflow");
    // Spans of our own three kinds go to OTLP, whatever RUST_LOG says about printing.
    let spans = EnvFilter::new("sensorflow::source=info,sensorflow::score=info,sensorflow::alerts=info");
    let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(spans);
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    Ok(Logging { provider: Some(provider) })
}

/// Wraps the OTLP exporter to say on stderr when exports start failing (collector down,
/// wrong URL) and when they work again, once each time, instead of losing spans silently.
/// Plain stderr, not `tracing`: the exporter runs inside the tracing pipeline.
#[derive(Debug)]
struct Reporting<E> {
    inner: E,
    endpoint: String,
    failing: AtomicBool,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter for Reporting<E> {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => {
                eprintln!(
                    "sensorflow: exporting {n} spans to {} failed: {e}; dropping spans until it works",
                    self.endpoint
                );
            }
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                eprintln!("sensorflow: exporting spans to {} works again", self.endpoint);
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Where each device's recent source batches came from, for tracing alerts back to them.
#[derive(Debug, Default)]
pub struct BatchLedger {
    by_device: Mutex<HashMap<u64, VecDeque<Arc<LedgerEntry>>>>,
}

/// One source batch, as remembered for tracing.
#[derive(Debug)]
pub struct LedgerEntry {
    /// The partition's name.
    pub partition: String,
    /// The process-wide batch number.
    pub batch: u64,
    /// The `source_batch` span.
    pub context: SpanContext,
    /// Least and greatest event time in it.
    pub ts_range: (u64, u64),
}

/// Batches remembered per device.
const PER_DEVICE: usize = 8;

impl BatchHook for BatchLedger {
    fn batch(&self, span: &tracing::Span, info: BatchInfo<'_>) {
        let context = span.context();
        let context = opentelemetry::trace::TraceContextExt::span(&context).span_context().clone();
        if !context.is_valid() {
            return;
        }
        let record = Arc::new(LedgerEntry {
            partition: info.partition.to_string(),
            batch: info.batch,
            context,
            ts_range: info.ts_range,
        });
        let mut map = lock(&self.by_device);
        for &d in info.devices {
            let q = map.entry(d).or_default();
            q.push_back(record.clone());
            if q.len() > PER_DEVICE {
                q.pop_front();
            }
        }
    }
}

impl BatchLedger {
    /// The newest remembered batch with events of `device` in `[start, end)`, else the
    /// device's newest batch.
    pub fn find(&self, device: u64, start: u64, end: u64) -> Option<Arc<LedgerEntry>> {
        let map = lock(&self.by_device);
        let q = map.get(&device)?;
        q.iter().rev().find(|b| b.ts_range.0 < end && b.ts_range.1 >= start).or_else(|| q.back()).cloned()
    }
}

/// Opens the `alert` span of one written alert, linked to the batch that carried it.
pub fn alert_span(ledger: &BatchLedger, a: &sensorflow_operators::Alert) -> tracing::Span {
    let found = ledger.find(a.key.device.0, a.window_start, a.window_end);
    let span = tracing::info_span!(
        target: "sensorflow::alerts",
        "alert",
        alert_id = %a.id(),
        device = &*a.device,
        metric = &*a.metric,
        rule = &*a.key.source,
        value = a.value,
        window_end = a.window_end,
        partition = found.as_ref().map(|b| b.partition.as_str()),
        batch = found.as_ref().map(|b| b.batch),
    );
    if let Some(b) = found {
        span.add_link(b.context.clone());
    }
    span
}
