//! The device-level operator alone (issue 14): window aggregates of `DEVICES` devices × 8
//! metrics (default 10,000) for `ROWS` windows each (default 300; the first 200 are the
//! warm-up) joined into rows per device and scored by the device model, at 1 and 2 workers.
//! The aggregates are made inside each worker for the devices it owns (as the windows
//! operator leaves them, partitioned by device), so what is measured is the operator: joining,
//! the model and the episodes. The statistical model, or with `CARD=path/to/card.json` (a
//! learned row model of 8 metrics, `sensorflow train --data`) the learned one.
//!
//! Run: `cargo bench --bench device_rows` (results in `target/bench-results/device_rows.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{env_u64, report, Row};
use sensorflow_models::device::learned::{load_row_prior, RowPrior};
use sensorflow_models::device::{DeviceConfig, DeviceModel};
use sensorflow_operators::*;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandleVec, ProbeHandle};

const WARMUP: usize = 200;

fn factory(prior: Option<Arc<RowPrior>>) -> RowModelFactory {
    let cfg = DeviceConfig { warmup_rows: WARMUP, ..DeviceConfig::default() };
    Arc::new(move |metrics: &[Arc<str>]| {
        let model = match &prior {
            Some(p) => DeviceModel::with_prior(p.clone(), &cfg),
            None => DeviceModel::new(metrics.len(), 1000, &cfg),
        };
        model.ok().map(|m| Box::new(m) as Box<dyn RowModel>)
    })
}

fn run(
    workers: usize,
    devices: u64,
    rows: u64,
    names: &[String],
    prior: Option<Arc<RowPrior>>,
) -> (u64, std::time::Duration) {
    let counters = Counters::shared();
    let dict = Dictionary::default();
    let metrics: Vec<MetricId> = names.iter().map(|n| dict.metric(n)).collect();
    let models = factory(prior);
    let c = counters.clone();
    let started = Instant::now();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index() as u64, worker.peers() as u64);
        let mut input: InputHandleVec<u64, WindowAgg> = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let (models, dict, c2) = (models.clone(), dict.clone(), c.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            input
                .to_stream(scope)
                .device_rows(models, None, dict, c2, StateIdle(None), None)
                .probe_with(&probe);
        });
        for r in 0..rows {
            let start = r * 1000;
            for d in (0..devices).filter(|d| d % peers == index) {
                // Eight related readings: a shared driver, each metric a function of it.
                let a = ((r + d) as f64 / 37.0).sin() * 3.0 + (d % 13) as f64;
                for (j, &metric) in metrics.iter().enumerate() {
                    let noise =
                        (((r * 7919 + d * 104_729 + j as u64 * 31) % 1000) as f64 / 1000.0 - 0.5) * 0.2;
                    let v = a * (j + 1) as f64 + 10.0 * j as f64 + noise;
                    input.send(WindowAgg {
                        device: DeviceId(d + 1),
                        metric,
                        start,
                        end: start + 1000,
                        count: 10,
                        min: v,
                        max: v,
                        mean: v,
                        variance: 0.0,
                        first: v,
                        last: v,
                    });
                }
            }
            input.advance_to(start + 1000);
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    (Counters::get(&counters.device_rows_scored), started.elapsed())
}

fn main() {
    let devices = env_u64("DEVICES", 10_000);
    let rows = env_u64("ROWS", 300).max(WARMUP as u64 + 1);
    let card = std::env::var("CARD").ok();
    let prior = card.as_ref().map(|c| load_row_prior(std::path::Path::new(c)).expect("the card loads"));
    let names: Vec<String> = match &prior {
        Some(p) => {
            assert_eq!(p.metrics(), 8, "this benchmark feeds rows of 8 metrics");
            p.schema().metrics.clone()
        }
        None => (0..8).map(|j| format!("m{j}")).collect(),
    };
    let name = if prior.is_some() { "device rows, learned model" } else { "device rows, statistical model" };
    let mut out = Vec::new();
    for workers in [1, 2] {
        let best =
            (0..3).map(|_| run(workers, devices, rows, &names, prior.clone())).min_by_key(|r| r.1).unwrap();
        assert_eq!(best.0, devices * rows, "every row scored");
        out.push(Row {
            name: name.into(),
            workers,
            events: best.0,
            elapsed: best.1,
            note: format!("rows of 8 metrics, {devices} devices, {WARMUP} of {rows} rows warm-up"),
        });
    }
    report("device_rows", &out);
}
