//! The Prometheus / OpenMetrics exposition, read from the workers' counters at scrape time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sensorflow_operators::{lock, Counters, PartitionGauge};

use crate::observe::telemetry::Telemetry;

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

fn float_counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> std::fmt::Result {
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
        let evicted = |kind: &str, v: &std::sync::atomic::AtomicU64| {
            (vec![("source", t.source.clone()), ("kind", kind.to_string())], Counters::get(v))
        };
        counter(
            &mut enc,
            "sensorflow_state_evicted",
            "Per-series and per-device state dropped after its idle time (--state-idle)",
            &[evicted("series", &c.evicted_series), evicted("devices", &c.evicted_devices)],
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
            "sensorflow_clock_rejected",
            "Events whose timestamp was out of range (before the floor, too far ahead of the wall clock, or an unconfirmed jump); also dead-lettered",
            &one(&c.clock_rejected),
        )?;
        let clock = c.clock_rejected_by_device();
        let mut by_device: Vec<(Labels, u64)> = clock
            .named
            .into_iter()
            .map(|(device, n)| (vec![("source", t.source.clone()), ("device", device)], n))
            .collect();
        if clock.others > 0 {
            by_device.push((vec![("source", t.source.clone()), ("device", "(others)".into())], clock.others));
        }
        counter(
            &mut enc,
            "sensorflow_clock_rejected_by_device",
            "Clock-guard rejections of each device (the first 100 devices rejected are named, the rest counted as device=\"(others)\")",
            &by_device,
        )?;
        counter(
            &mut enc,
            "sensorflow_device_rows_scored",
            "Device rows (every metric of a device in one window) scored by the device model",
            &one(&c.device_rows_scored),
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
        let held = |f: &dyn Fn(&PartitionGauge) -> f64| -> Vec<(Labels, f64)> {
            parts
                .iter()
                .map(|p| {
                    let l = vec![
                        ("partition", p.name.clone()),
                        ("worker", (t.process * t.workers + p.worker).to_string()),
                    ];
                    (l, f(p))
                })
                .collect()
        };
        float_counter(
            &mut enc,
            "sensorflow_source_held_back",
            "Times a partition was held back because the graph was too far behind it",
            &held(&|p| p.held_back.load(Ordering::Relaxed) as f64),
        )?;
        float_counter(
            &mut enc,
            "sensorflow_source_held_back_seconds",
            "Time a partition spent held back",
            &held(&|p| p.held_back_us.load(Ordering::Relaxed) as f64 / 1e6),
        )?;
        gauge(
            &mut enc,
            "sensorflow_source_holding",
            "1 while a partition is held back",
            &held(&|p| f64::from(u8::from(p.holding.load(Ordering::Relaxed)))),
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
        let model = lock(&t.model).clone();
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
        Counters::add(&counters.evicted_devices, 5);
        t.latency.record(300);
        let gauge = counters.register_partition("kafka:s/0".into(), 1);
        gauge.max_ts_ms.store(10_000, Ordering::Relaxed);
        gauge.watermark_ms.store(7_500, Ordering::Relaxed);
        gauge.held_back.store(4, Ordering::Relaxed);
        gauge.held_back_us.store(1_500_000, Ordering::Relaxed);
        gauge.holding.store(true, Ordering::Relaxed);
        counters.clock_rejected("dev-3", 2);
        counters.clock_rejected("dev-3", 1);
        for d in 0..sensorflow_operators::CLOCK_DEVICES_NAMED {
            counters.clock_rejected(&format!("fleet-{d:03}"), 1);
        }
        counters.clock_rejected("one-too-many", 4);
        let text = metrics_text(&t).expect("encodes");
        for line in [
            "sensorflow_records_in_total{source=\"simulator\",worker=\"1\"} 17",
            "sensorflow_records_in_total{source=\"simulator\",worker=\"0\"} 0",
            "sensorflow_late_events_total{source=\"simulator\"} 3",
            "sensorflow_state_evicted_total{source=\"simulator\",kind=\"devices\"} 5",
            "sensorflow_state_evicted_total{source=\"simulator\",kind=\"series\"} 0",
            "sensorflow_watermark_lag_seconds{partition=\"kafka:s/0\",worker=\"1\"} 2.5",
            "sensorflow_source_held_back_total{partition=\"kafka:s/0\",worker=\"1\"} 4.0",
            "sensorflow_source_held_back_seconds_total{partition=\"kafka:s/0\",worker=\"1\"} 1.5",
            "sensorflow_source_holding{partition=\"kafka:s/0\",worker=\"1\"} 1.0",
            "sensorflow_ingest_to_alert_seconds_bucket{le=\"0.0005\",source=\"simulator\"} 1",
            "sensorflow_ingest_to_alert_seconds_bucket{le=\"+Inf\",source=\"simulator\"} 1",
            "sensorflow_ingest_to_alert_seconds_count{source=\"simulator\"} 1",
            "sensorflow_clock_rejected_total{source=\"simulator\"} 107",
            "sensorflow_clock_rejected_by_device_total{source=\"simulator\",device=\"dev-3\"} 3",
            "sensorflow_clock_rejected_by_device_total{source=\"simulator\",device=\"fleet-098\"} 1",
            "sensorflow_clock_rejected_by_device_total{source=\"simulator\",device=\"(others)\"} 5",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
