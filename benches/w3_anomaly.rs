//! W3 (model part): the anomaly operator scoring every event's 64-value window with the
//! shipped student (pruned, int8, run as plain Rust), batched per timestamp, at 1 and 2
//! workers. Events are pre-generated in memory (1,000 devices × `W3_SAMPLES` samples, default
//! 2,000: 2 M windows) so the source costs nothing; what is measured is exchange by device,
//! event-time ordering, per-series normalisation, batching and scoring.
//!
//! Run: `cargo bench --bench w3_anomaly` (results in `target/bench-results/w3_anomaly.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{env_u64, report, Row};
use sensorflow_models::detector::artifact::default_scorer;
use sensorflow_operators::*;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

fn events(devices: u64, samples: u64) -> Vec<Vec<Event>> {
    // One partition per device group, each in time order.
    let mut parts: Vec<Vec<Event>> = vec![Vec::new(); 8];
    for i in 0..samples {
        for d in 0..devices {
            let v =
                20.0 + ((i * 31 + d * 17) % 97) as f64 * 0.05 + if (i + d) % 997 == 0 { 15.0 } else { 0.0 };
            parts[(d % 8) as usize].push(Event {
                device: DeviceId(d + 1),
                metric: MetricId(7),
                ts: 1_000 * i,
                value: v,
                seq: i,
            });
        }
    }
    parts
}

fn run(workers: usize, parts: &[Vec<Event>]) -> (u64, u64, std::time::Duration) {
    let counters = Counters::shared();
    let scorer = default_scorer().expect("shipped model loads");
    let factory: ScorerFactory = Arc::new(move || (Box::new(scorer.clone()) as Box<dyn Scorer>, None));
    let parts = Arc::new(parts.to_vec());
    let c = counters.clone();
    let started = Instant::now();
    timely::execute(timely::Config::process(workers), move |worker| {
        let readers = VecReader::for_worker(&parts, worker.index(), worker.peers(), 16_384);
        let probe = ProbeHandle::new();
        let ctx = SourceContext { counters: c.clone(), ..SourceContext::default() };
        let factory = factory.clone();
        let c2 = c.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            partitioned_source(scope, "W3", readers, SourceOptions::default(), ctx)
                .events
                .anomalies(factory, Dictionary::default(), c2, StateIdle(None), None)
                .probe_with(&probe);
        });
        while !probe.done() {
            worker.step();
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    (Counters::get(&counters.windows_scored), Counters::get(&counters.alerts), started.elapsed())
}

fn main() {
    let samples = env_u64("W3_SAMPLES", 2_000);
    let parts = events(1_000, samples);
    let mut rows = Vec::new();
    for workers in [1, 2] {
        let best = (0..3).map(|_| run(workers, &parts)).min_by_key(|r| r.2).unwrap();
        rows.push(Row {
            name: "anomaly operator (student, plain)".into(),
            workers,
            events: best.0,
            elapsed: best.2,
            note: format!("windows scored; {} alerts", best.1),
        });
    }
    report("w3_anomaly", &rows);
}
