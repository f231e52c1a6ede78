//! W3's limit: the anomaly operator alone (exchange by device, event-time order, per-series
//! normalisation and calibration, batched scoring with the shipped model) over the W3 file's
//! events already parsed into memory, at the engine's worker count, each worker reading its
//! contiguous share of the events as the engine reads its share of the file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensorflow_operators::{
    partitioned_source, Anomalies, Counters, Dictionary, Event, PartitionReader, SourceContext,
    SourceOptions, StateIdle, VecReader,
};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::connectors::parse::{EventBuilder, Limits};
use crate::connectors::text::json::parse_json;
use crate::Error;

/// One run of the operator alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AloneRun {
    /// Events read.
    pub events: u64,
    /// Windows the model scored.
    pub scored: u64,
    /// Wall time from the dataflow's start to its end.
    pub elapsed: Duration,
}

/// The events of a JSON-lines file (every line must parse).
pub fn parse_file(bytes: &[u8]) -> Result<Vec<Event>, Error> {
    let mut b = EventBuilder::new(Default::default(), Default::default(), Limits::default());
    bytes
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            parse_json(l, &mut b)
                .map_err(|r| Error::Runtime(format!("bench: a line of the W3 file does not parse: {r:?}")))
        })
        .collect()
}

/// Runs the operator with the shipped model over `events` on `workers` threads.
pub fn run(events: &[Event], workers: usize, idle: StateIdle) -> Result<AloneRun, Error> {
    let factory = crate::engine::scorers::scorer_factory("default")?
        .ok_or_else(|| Error::Runtime("bench: the default model is `none`".into()))?;
    let workers = workers.max(1);
    let per = events.len().div_ceil(workers).max(1);
    // Each worker takes its share once; copying it is not timed.
    let shares: Arc<Vec<Mutex<Option<Vec<Event>>>>> =
        Arc::new(events.chunks(per).map(|c| Mutex::new(Some(c.to_vec()))).collect());
    let counters = Counters::shared();
    let c = counters.clone();
    let started = Instant::now();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let share = shares
            .get(worker.index())
            .and_then(|m| m.lock().ok().and_then(|mut s| s.take()))
            .unwrap_or_default();
        let readers = vec![Box::new(VecReader::new(share, 16_384)) as Box<dyn PartitionReader>];
        let probe = ProbeHandle::new();
        let ctx = SourceContext { counters: c.clone(), ..SourceContext::default() };
        let (factory, c) = (factory.clone(), c.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            partitioned_source(scope, "W3 alone", readers, SourceOptions::default(), ctx)
                .events
                .anomalies(factory, Dictionary::default(), c, idle, None)
                .probe_with(&probe);
        });
        while !probe.done() {
            worker.step();
        }
    })
    .map_err(|e| Error::Runtime(format!("bench: the operator's workers did not start: {e}")))?;
    for r in guards.join() {
        r.map_err(|e| Error::Runtime(format!("bench: an operator worker failed: {e}")))?;
    }
    Ok(AloneRun {
        events: events.len() as u64,
        scored: Counters::get(&counters.windows_scored),
        elapsed: started.elapsed(),
    })
}
