//! The dataflow every worker builds, as in the design's diagram:
//!
//! ```text
//! source ─► dedupe(device, seq) ─► exchange(device) ─┬► windows ─┬► threshold rules ────────┬► alerts ─► sink
//!   ├► dead letters ─► dead-letter writer            │           └► device rows (RowModel) ─┤   ▲
//!   └► late events ─► late writer                    └► anomaly (batched Scorer) ───────────┘   │
//!                                                    rules + device metadata (differential) ────┘
//! ```
//!
//! In a cluster, alerts also pass `resolve_names`: an alert may be made in a process that
//! never read its device's name.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::input::{Input, InputSession};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Concat, Inspect, Probe};
use timely::dataflow::{ProbeHandle, StreamVec};

use sensorflow_operators::{
    partitioned_source, Anomalies, ApplyRules, BatchHook, Control, Counters, Dedupe, DeviceRows,
    PartitionReader, ResolveNames, SourceContext, WindowSpec, Windows,
};

use super::outputs::{write_alerts, write_dead_letters, write_late};
use super::worker::WorkerReport;
use super::Shared;

/// Probes on the graph: the sources' output frontier, and the frontier of everything written.
pub(super) struct Probes {
    pub source: ProbeHandle<u64>,
    pub done: ProbeHandle<u64>,
}

/// Sends a side output (dead letters, late events) to its writer; `probe` waits for it.
fn divert<D: Clone + 'static>(
    stream: StreamVec<'_, u64, D>,
    shared: &Arc<Shared>,
    write: fn(&Shared, &[D]),
    probe: &ProbeHandle<u64>,
) {
    let s = shared.clone();
    stream
        .inspect_core(move |batch| {
            if let Ok((_, records)) = batch {
                write(&s, records);
            }
        })
        .probe_with(probe);
}

/// Builds this worker's dataflow over `readers`; returns the rules/metadata input.
pub(super) fn build(
    worker: &mut timely::worker::Worker,
    shared: &Arc<Shared>,
    spec: WindowSpec,
    readers: Vec<Box<dyn PartitionReader>>,
    report: &Rc<RefCell<WorkerReport>>,
    probes: &Probes,
) -> InputSession<u64, Control, isize> {
    let index = worker.index();
    // The worker's index within this process (timely numbers workers process by process).
    let local = index % shared.config.workers.max(1);
    let cluster = shared.config.processes > 1;
    let counters = shared.counters.clone();
    let (source_probe, done_probe) = (&probes.source, &probes.done);
    worker.dataflow::<u64, _, _>(|scope| {
        let (control_input, control) = scope.new_collection::<Control, isize>();
        let source_ctx = SourceContext {
            counters: counters.clone(),
            clock: Some((shared.clock.clone(), local)),
            errors: shared.errors.clone(),
            stop: shared.stop.clone(),
            worker: local,
            batch_hook: shared.ledger.clone().map(|l| l as Arc<dyn BatchHook>),
            names: shared.dict.clone(),
            done: Some(done_probe.clone()),
        };
        let name = format!("Source({})", shared.config.source.name());
        let streams = partitioned_source(scope, &name, readers, shared.config.source_options(), source_ctx);

        divert(streams.dead, shared, write_dead_letters, done_probe);
        divert(streams.late, shared, write_late, done_probe);

        let s = shared.clone();
        let r = report.clone();
        let idle = shared.config.state_idle_setting();
        let events = streams.events.probe_with(source_probe).dedupe(counters.clone(), idle);
        let control_stream = control.consolidate().inner.broadcast();
        let windows = events.clone().windows_core(Pipeline, spec, counters.clone());
        let windows = match &shared.telemetry {
            Some(t) => {
                let t = t.clone();
                windows.inspect_core(move |batch| {
                    if let Ok((_, w)) = batch {
                        t.windows_closed(w);
                    }
                })
            }
            None => windows,
        };
        // Rules that fire early read the windows' own input too: only when the run starts with one
        // (a second reader of every event costs a copy of it) and windows are tumbling.
        let early = shared.initial_rules.iter().any(|c| matches!(c, Control::Rule(r) if r.early));
        let rule_alerts = if early && spec.hop_ms == spec.size_ms {
            windows.clone().apply_rules_early(
                control_stream.clone(),
                events.clone(),
                spec.size_ms,
                shared.dict.clone(),
                counters.clone(),
                idle,
            )
        } else {
            windows.clone().apply_rules(control_stream.clone(), shared.dict.clone(), counters.clone(), idle)
        };
        let rule_alerts = match &shared.device_models {
            Some(models) => {
                let device_alerts = windows.clone().device_rows(
                    models.clone(),
                    shared.scores.clone(),
                    shared.dict.clone(),
                    counters.clone(),
                    idle,
                    shared.snapshots.clone(),
                );
                rule_alerts.concat(device_alerts)
            }
            None => rule_alerts,
        };
        let alerts = match &shared.scorers {
            Some(factory) => {
                let model_alerts = events.anomalies(
                    factory.clone(),
                    shared.dict.clone(),
                    counters.clone(),
                    idle,
                    shared.snapshots.clone(),
                );
                rule_alerts.concat(model_alerts)
            }
            None => rule_alerts,
        };
        // In a cluster an alert may be made in a process that never read its device's name.
        let alerts = if cluster { alerts.resolve_names(control_stream, shared.dict.clone()) } else { alerts };
        alerts
            .inspect_core(move |batch| match batch {
                Ok((stamp, alerts)) => {
                    // A stamp with no element makes no progress claim; keep such alerts.
                    if stamp.least().is_none_or(|&t| t >= s.suppress_below) {
                        write_alerts(&s, alerts, &mut r.borrow_mut());
                    } else {
                        Counters::add(&s.counters.alerts_deduplicated, alerts.len() as u64);
                    }
                }
                Err(frontier) => {
                    if let Some(&t) = frontier.first() {
                        if index == 0 {
                            s.clock.forget_before(t);
                        }
                    }
                }
            })
            .probe_with(done_probe);
        control_input
    })
}
