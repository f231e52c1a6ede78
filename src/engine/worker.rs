//! One worker: opens its readers, builds the graph, then steps it until every output is done,
//! feeding rule changes and (in a cluster) newly learned names into the control collection at
//! the sources' frontier, and committing offsets as the output frontier advances.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sensorflow_operators::{lock, Control, WindowSpec};
use timely::dataflow::ProbeHandle;

use super::durable::Durable;
use super::graph::{self, Probes};
use super::rules_watch::RulesWatch;
use super::summary::FiredAlert;
use super::Shared;
use crate::connectors::parse::Limits;
use crate::connectors::{self, ReaderContext};
use crate::Error;

/// What one worker measured.
pub(super) struct WorkerReport {
    pub latency: Histogram<u64>,
    /// Paced simulator runs: µs from the moment the event closing an alert's window was due.
    pub due_latency: Histogram<u64>,
    pub by_rule: BTreeMap<String, (u64, u64)>,
    /// Fired alerts as (device, metric, episode start, source), for simulator ground truth.
    pub fired: Vec<FiredAlert>,
}

pub(super) fn run_worker(
    worker: &mut timely::worker::Worker,
    shared: &Arc<Shared>,
    spec: WindowSpec,
) -> WorkerReport {
    let index = worker.index();
    let peers = worker.peers();
    // The worker's index within this process (timely numbers workers process by process).
    let local = index % shared.config.workers.max(1);
    let cluster = shared.config.processes > 1;
    let ctx = ReaderContext {
        index,
        peers,
        dict: shared.dict.clone(),
        limits: Limits { max_abs_value: shared.config.max_abs_value, ..Limits::default() },
        labels: shared.labels.clone(),
        max_events: shared.config.max_events,
    };
    let readers = match connectors::open(&shared.config.source, &ctx) {
        Ok((readers, committers)) => {
            lock(&shared.committers).extend(committers);
            match shared.pace {
                Some(_) => readers
                    .into_iter()
                    .map(|inner| {
                        Box::new(super::PaceOrigin { inner, shared: shared.clone() })
                            as Box<dyn sensorflow_operators::PartitionReader>
                    })
                    .collect(),
                None => readers,
            }
        }
        Err(e) => {
            shared.fail(Error::Connector(e));
            Vec::new()
        }
    };
    let report = Rc::new(RefCell::new(WorkerReport {
        latency: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid")),
        due_latency: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid")),
        by_rule: BTreeMap::new(),
        fired: Vec::new(),
    }));
    let probes = Probes { source: ProbeHandle::new(), done: ProbeHandle::new() };
    let mut control = graph::build(worker, shared, spec, readers, &report, &probes);
    // A snapshot that cannot be restored stops the run before it reads (the error says how to
    // fall back).
    if let Some(e) = shared.snapshots.as_ref().and_then(|s| s.take_failure()) {
        shared.fail(e.into());
    }
    let (source_probe, done_probe) = (probes.source, probes.done);
    // Rules and metadata: worker 0 owns the file; every worker advances its input's time
    // with the source frontier so rule changes apply from "now" in event time.
    let mut rules = RulesWatch::new(&shared.config, &shared.initial_rules);
    if index == 0 {
        for c in &shared.initial_rules {
            control.insert(c.clone());
        }
    }
    let mut control = Some(control);
    let started = Instant::now();
    let mut durable = Durable::new(index == 0);
    while !done_probe.done() {
        durable.maybe_commit(shared, &done_probe);
        if let Some(limit) = shared.config.duration {
            if index == 0 && started.elapsed() >= Duration::from_millis(limit) {
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        let frontier = source_probe.with_frontier(|f| f.first().copied());
        match frontier {
            Some(t) => {
                if let Some(input) = control.as_mut() {
                    if index == 0 {
                        rules.poll(input);
                    }
                    if cluster && local == 0 {
                        // Tell every process the names this one has learned, at a time no
                        // later than the events that carry them.
                        for name in shared.dict.devices.drain_new() {
                            input.insert(Control::DeviceName(name.to_string()));
                        }
                        for name in shared.dict.metrics.drain_new() {
                            input.insert(Control::MetricName(name.to_string()));
                        }
                    }
                    if t > *input.time() {
                        input.advance_to(t);
                    }
                    input.flush();
                }
            }
            None => {
                // Sources are done: close the rules input so everything can drain.
                control = None;
            }
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    drop(control);
    durable.finish(shared);
    Rc::try_unwrap(report).map(RefCell::into_inner).unwrap_or_else(|r| {
        let mut r = r.borrow_mut();
        WorkerReport {
            latency: r.latency.clone(),
            due_latency: r.due_latency.clone(),
            by_rule: std::mem::take(&mut r.by_rule),
            fired: std::mem::take(&mut r.fired),
        }
    })
}
