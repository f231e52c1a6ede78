//! Stateful operators at 1 and several workers, asserting on captured output.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensorflow_operators::testing::captured_with_times;
use sensorflow_operators::*;
use timely::dataflow::operators::{Capture, Inspect, Probe, ToStream};
use timely::dataflow::{ProbeHandle, StreamVec};

const DEV_A: DeviceId = DeviceId(11);
const DEV_B: DeviceId = DeviceId(22);
const TEMP: MetricId = MetricId(1);
const HUM: MetricId = MetricId(2);

fn ev(device: DeviceId, metric: MetricId, ts: u64, value: f64, seq: u64) -> Event {
    Event { device, metric, ts, value, seq }
}

/// What a pipeline fragment under test produced, from every worker.
struct Output<D> {
    data: Vec<(u64, D)>,
    late: Vec<LateEvent>,
    counters: Arc<Counters>,
}

/// Runs `partitions` (partition `p` read by worker `p % workers`) through `build` at
/// `workers` workers and gathers the captured output of all of them.
fn run<D, F>(workers: usize, partitions: Vec<Vec<Event>>, options: SourceOptions, build: F) -> Output<D>
where
    D: Clone + Send + 'static,
    F: for<'s> Fn(StreamVec<'s, u64, Event>, Arc<Counters>) -> StreamVec<'s, u64, D> + Send + Sync + 'static,
{
    let counters = Counters::shared();
    let c = counters.clone();
    let config = timely::Config::process(workers);
    let guards = timely::execute(config, move |worker| {
        let readers = VecReader::for_worker(&partitions, worker.index(), worker.peers(), 3);
        let probe = ProbeHandle::new();
        let ctx = SourceContext { counters: c.clone(), ..SourceContext::default() };
        let (out, late) = worker.dataflow::<u64, _, _>(|scope| {
            let s = partitioned_source(scope, "Test", readers, options.clone(), ctx);
            let late = s.late.probe_with(&probe).capture();
            let out = build(s.events, c.clone()).probe_with(&probe).capture();
            (out, late)
        });
        while !probe.done() {
            worker.step();
        }
        let late: Vec<LateEvent> = captured_with_times(&late).into_iter().map(|(_, l)| l).collect();
        (captured_with_times(&out), late)
    })
    .expect("timely starts");
    let mut data = Vec::new();
    let mut late = Vec::new();
    for r in guards.join() {
        let (d, l) = r.expect("worker finished");
        data.extend(d);
        late.extend(l);
    }
    Output { data, late, counters }
}

fn opts(lateness_ms: u64) -> SourceOptions {
    SourceOptions { lateness_ms, ..SourceOptions::default() }
}

/// (device, metric, start, end, count, min, max, mean)
type WindowRow = (DeviceId, MetricId, u64, u64, u64, f64, f64, f64);

fn sorted_windows(mut w: Vec<WindowAgg>) -> Vec<WindowRow> {
    w.sort_by_key(|w| (w.device, w.metric, w.start));
    w.iter().map(|w| (w.device, w.metric, w.start, w.end, w.count, w.min, w.max, w.mean)).collect()
}

/// Two devices, two metrics, spread over three partitions (interleaved in time).
fn mixed_input() -> Vec<Vec<Event>> {
    let mut parts = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..30u64 {
        let ts = i * 100; // 0 .. 2900 ms
        parts[(i % 3) as usize].push(ev(DEV_A, TEMP, ts, i as f64, i));
        parts[((i + 1) % 3) as usize].push(ev(DEV_B, HUM, ts, 100.0 - i as f64, i));
    }
    parts
}

#[test]
fn tumbling_windows_same_at_1_2_4_workers() {
    let spec = WindowSpec::tumbling(1000).unwrap();
    let mut results = Vec::new();
    for workers in [1, 2, 4] {
        let out = run(workers, mixed_input(), opts(0), move |s, c| s.windows(spec, c));
        assert!(out.late.is_empty());
        // Each window is emitted at end - 1.
        for (t, w) in &out.data {
            assert_eq!(*t, w.end - 1);
        }
        results.push(sorted_windows(out.data.into_iter().map(|(_, w)| w).collect()));
    }
    // Hand-computed: device A values i for ts i*100, so window k holds i = 10k..10k+9.
    let a: Vec<_> = results[0].iter().filter(|w| w.0 == DEV_A).cloned().collect();
    assert_eq!(
        a,
        vec![
            (DEV_A, TEMP, 0, 1000, 10, 0.0, 9.0, 4.5),
            (DEV_A, TEMP, 1000, 2000, 10, 10.0, 19.0, 14.5),
            (DEV_A, TEMP, 2000, 3000, 10, 20.0, 29.0, 24.5),
        ]
    );
    let b: Vec<_> = results[0].iter().filter(|w| w.0 == DEV_B).map(|w| (w.2, w.5, w.6)).collect();
    assert_eq!(b, vec![(0, 91.0, 100.0), (1000, 81.0, 90.0), (2000, 71.0, 80.0)]);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

#[test]
fn sliding_windows_cover_each_event_size_over_hop_times() {
    let spec = WindowSpec::sliding(1000, 500).unwrap();
    for workers in [1, 3] {
        let out = run(workers, mixed_input(), opts(0), move |s, c| s.windows(spec, c));
        let a: Vec<_> = sorted_windows(out.data.into_iter().map(|(_, w)| w).collect())
            .into_iter()
            .filter(|w| w.0 == DEV_A)
            .map(|w| (w.2, w.4, w.5, w.6))
            .collect();
        // Windows start every 500 ms; [0,1000) holds i=0..9, [500,1500) i=5..14, ...
        assert_eq!(
            a,
            vec![
                (0, 10, 0.0, 9.0),
                (500, 10, 5.0, 14.0),
                (1000, 10, 10.0, 19.0),
                (1500, 10, 15.0, 24.0),
                (2000, 10, 20.0, 29.0),
                (2500, 5, 25.0, 29.0)
            ],
            "workers {workers}"
        );
    }
}

#[test]
fn many_events_in_one_boundary_millisecond_are_all_counted() {
    // 500 events at exactly 999 ms, then 500 at exactly 1000 ms, across two partitions, with
    // zero allowed lateness: none is late, each lands in its own window.
    let mut parts = vec![Vec::new(), Vec::new()];
    for i in 0..1000u64 {
        let ts = if i < 500 { 999 } else { 1000 };
        parts[(i % 2) as usize].push(ev(DEV_A, TEMP, ts, 1.0, i));
    }
    let spec = WindowSpec::tumbling(1000).unwrap();
    for workers in [1, 2] {
        let out = run(workers, parts.clone(), opts(0), move |s, c| s.windows(spec, c));
        assert!(out.late.is_empty(), "no event may be late");
        let w = sorted_windows(out.data.into_iter().map(|(_, w)| w).collect());
        assert_eq!(w.iter().map(|w| (w.2, w.4)).collect::<Vec<_>>(), vec![(0, 500), (1000, 500)]);
        assert_eq!(Counters::get(&out.counters.late), 0);
    }
}

#[test]
fn late_events_go_to_the_late_output_unless_within_lateness() {
    let parts = vec![vec![
        ev(DEV_A, TEMP, 5_000, 1.0, 0),
        ev(DEV_A, TEMP, 1_000, 2.0, 1),
        ev(DEV_A, TEMP, 5_001, 3.0, 2),
    ]];
    let spec = WindowSpec::tumbling(1000).unwrap();
    for workers in [1, 2] {
        let strict = run(workers, parts.clone(), opts(0), move |s, c| s.windows(spec, c));
        assert_eq!(strict.late.len(), 1);
        assert_eq!(strict.late[0].event.ts, 1_000);
        assert_eq!(strict.late[0].watermark, 5_000);
        assert_eq!(Counters::get(&strict.counters.late), 1);
        let w = sorted_windows(strict.data.into_iter().map(|(_, w)| w).collect());
        assert_eq!(w.iter().map(|w| (w.2, w.4)).collect::<Vec<_>>(), vec![(5000, 2)]);

        let lenient = run(workers, parts.clone(), opts(4_000), move |s, c| s.windows(spec, c));
        assert!(lenient.late.is_empty());
        let w = sorted_windows(lenient.data.into_iter().map(|(_, w)| w).collect());
        assert_eq!(w.iter().map(|w| (w.2, w.4)).collect::<Vec<_>>(), vec![(1000, 1), (5000, 2)]);
    }
}

#[test]
fn dedupe_drops_repeats_across_partitions() {
    // Device A's seqs 0..50 in partition 0, and 25..75 again in partition 1 (a replay).
    let p0: Vec<Event> = (0..50).map(|s| ev(DEV_A, TEMP, s * 10, s as f64, s)).collect();
    let p1: Vec<Event> = (25..75).map(|s| ev(DEV_A, TEMP, s * 10, s as f64, s)).collect();
    let p2: Vec<Event> = (0..10).map(|s| ev(DEV_B, TEMP, s * 10, 0.0, NO_SEQ)).collect();
    for workers in [1, 2, 3] {
        let out = run(workers, vec![p0.clone(), p1.clone(), p2.clone()], opts(10_000), |s, c| {
            s.dedupe(c, StateIdle(None))
        });
        let mut seqs: Vec<u64> =
            out.data.iter().filter(|(_, e)| e.device == DEV_A).map(|(_, e)| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..75).collect::<Vec<_>>(), "workers {workers}");
        assert_eq!(out.data.iter().filter(|(_, e)| e.device == DEV_B).count(), 10, "no-seq events pass");
        assert_eq!(Counters::get(&out.counters.duplicates), 25);
        assert_eq!(Counters::get(&out.counters.events_processed), 85);
    }
}

fn rule(name: &str, op: Comparator, value: f64, hysteresis: f64, min_duration_ms: u64) -> Control {
    Control::Rule(Rule {
        name: name.into(),
        metric: "temp".into(),
        devices: None,
        field: Field::Max,
        op,
        value: TotalF64(value),
        hysteresis: TotalF64(hysteresis),
        min_duration_ms,
        severity: "warning".into(),
        early: false,
    })
}

/// Runs per-second values for two devices through 1 s windows and `rules`; returns
/// (kind, device, episode start, window start) sorted.
fn rule_run(workers: usize, values: &[f64], rules: Vec<Control>) -> Vec<(AlertKind, String, u64, u64)> {
    let dict = Dictionary::default();
    let a = dict.device("a");
    let b = dict.device("b");
    let temp = dict.metric("temp");
    let parts: Vec<Vec<Event>> = [a, b]
        .iter()
        .map(|&d| {
            values.iter().enumerate().map(|(i, &v)| ev(d, temp, i as u64 * 1000, v, i as u64)).collect()
        })
        .collect();
    let spec = WindowSpec::tumbling(1000).unwrap();
    let out = run(workers, parts, opts(0), move |s, c| {
        let control = rules
            .iter()
            .map(|r| (r.clone(), 0u64, 1isize))
            .collect::<Vec<_>>()
            .to_stream(s.scope())
            .container::<Vec<_>>();
        s.windows(spec, c.clone()).apply_rules(control, dict.clone(), c, StateIdle(None))
    });
    let mut got: Vec<_> = out
        .data
        .into_iter()
        .map(|(_, a)| (a.kind, a.device.to_string(), a.key.window_start, a.window_start))
        .collect();
    got.sort();
    got
}

#[test]
fn rules_fire_once_per_crossing_with_hysteresis() {
    // Threshold 80, hysteresis 5: 79 (inside the band) must not clear; 74 does.
    let values = [50.0, 85.0, 90.0, 79.0, 81.0, 74.0, 60.0, 95.0, 10.0];
    let rules = vec![rule("hot", Comparator::Above, 80.0, 5.0, 0)];
    for workers in [1, 2] {
        let got = rule_run(workers, &values, rules.clone());
        let want: Vec<_> = ["a", "b"]
            .iter()
            .flat_map(|d| {
                vec![
                    (AlertKind::Cleared, d.to_string(), 1000, 5000),
                    (AlertKind::Cleared, d.to_string(), 7000, 8000),
                    (AlertKind::Fired, d.to_string(), 1000, 1000),
                    (AlertKind::Fired, d.to_string(), 7000, 7000),
                ]
            })
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "workers {workers}");
    }
}

#[test]
fn rules_wait_for_minimum_duration() {
    // Needs 3 s above 80: the 2-window run at 1..3 s never fires; the 4-window run fires
    // at its third window (episode starting at 5 s).
    let values = [50.0, 85.0, 85.0, 50.0, 50.0, 90.0, 90.0, 90.0, 90.0, 10.0];
    let rules = vec![rule("hot-long", Comparator::Above, 80.0, 0.0, 3000)];
    for workers in [1, 2] {
        let got = rule_run(workers, &values, rules.clone());
        let a: Vec<_> = got.iter().filter(|g| g.1 == "a").map(|g| (g.0, g.2, g.3)).collect();
        assert_eq!(
            a,
            vec![(AlertKind::Fired, 5000, 7000), (AlertKind::Cleared, 5000, 9000)],
            "workers {workers}"
        );
        assert_eq!(got.len(), 4);
    }
}

#[test]
fn below_rules_and_device_patterns() {
    let values = [50.0, 5.0, 50.0];
    let mut only_b = rule("cold-b", Comparator::Below, 10.0, 0.0, 0);
    if let Control::Rule(r) = &mut only_b {
        r.devices = Some("b*".into());
    }
    let got = rule_run(2, &values, vec![only_b]);
    assert_eq!(
        got,
        vec![(AlertKind::Fired, "b".into(), 1000, 1000), (AlertKind::Cleared, "b".into(), 1000, 2000)]
    );
}

/// A partition that has nothing to read for `stall`, then ends.
struct Stalling {
    until: Option<Instant>,
    stall: Duration,
    finished: Arc<AtomicBool>,
}

impl PartitionReader for Stalling {
    fn poll(&mut self, _out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let until = *self.until.get_or_insert_with(|| Instant::now() + self.stall);
        if Instant::now() < until {
            return Ok(Poll::Pending);
        }
        self.finished.store(true, Ordering::SeqCst);
        Ok(Poll::Done)
    }
}

/// Runs one busy partition and one stalling partition through windows; returns, for each
/// window, whether the stalling partition had already finished when the window came out.
fn idle_run(workers: usize, idle_timeout: Duration) -> Vec<(u64, bool)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    // Shared by all workers: the window may be emitted on a worker other than the reader's.
    let finished = Arc::new(AtomicBool::new(false));
    timely::execute(timely::Config::process(workers), move |worker| {
        let finished = finished.clone();
        let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
        if worker.index() == 0 {
            let events = (0..50).map(|i| ev(DEV_A, TEMP, i * 100, 1.0, i)).collect();
            readers.push(Box::new(VecReader::new(events, 5)));
            readers.push(Box::new(Stalling {
                until: None,
                stall: Duration::from_millis(800),
                finished: finished.clone(),
            }));
        }
        let options = SourceOptions {
            lateness_ms: 0,
            idle_timeout,
            policy: BadRecordPolicy::DeadLetter,
            ..SourceOptions::default()
        };
        let probe = ProbeHandle::new();
        let seen = s2.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let s = partitioned_source(scope, "Idle", readers, options, SourceContext::default());
            s.events
                .windows(WindowSpec::tumbling(1000).unwrap(), Counters::shared())
                .inspect(move |w| seen.lock().unwrap().push((w.start, finished.load(Ordering::SeqCst))))
                .probe_with(&probe);
        });
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    })
    .expect("timely starts")
    .join()
    .into_iter()
    .for_each(|r| r.expect("worker finished"));
    let mut v = seen.lock().unwrap().clone();
    v.sort();
    v
}

#[test]
fn idle_partition_does_not_stall_the_watermark() {
    for workers in [1, 2] {
        let quick = idle_run(workers, Duration::from_millis(50));
        // Windows 0..4 s close while the quiet partition is still open (only the last
        // window, whose end the busy partition's data never passes, waits for the end).
        assert_eq!(quick.len(), 5);
        let early: Vec<u64> = quick.iter().filter(|(_, done)| !done).map(|(s, _)| *s).collect();
        assert_eq!(early, vec![0, 1000, 2000, 3000], "workers {workers}: {quick:?}");

        let patient = idle_run(workers, Duration::from_secs(30));
        assert_eq!(patient.len(), 5);
        assert!(
            patient.iter().all(|(_, done)| *done),
            "without the idle timeout the quiet partition holds every window: {patient:?}"
        );
    }
}

/// A stub scorer: the score is the newest normalised value squashed into [0, 1], so a spike
/// scores high. Counts its calls to prove batching.
struct Stub {
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Scorer for Stub {
    fn window(&self) -> usize {
        8
    }
    fn score_batch(&mut self, inputs: &[f32], out: &mut Vec<f32>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        out.clear();
        out.extend(inputs.chunks(8).map(|w| (w[7] / 10.0).clamp(0.0, 1.0)));
    }
    fn threshold(&self) -> f32 {
        0.3
    }
    fn name(&self) -> &str {
        "stub"
    }
}

#[test]
fn anomaly_operator_scores_in_batches_and_is_worker_independent() {
    // Three devices, 100 samples each, split over three partitions; device A spikes at 50.
    let devices = [DeviceId(101), DeviceId(202), DeviceId(303)];
    let mut parts = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..100u64 {
        for (d, dev) in devices.iter().enumerate() {
            let spike = d == 0 && i == 50;
            let v = if spike { 100.0 } else { 10.0 + ((i * 7 + d as u64) % 5) as f64 * 0.1 };
            parts[((i as usize) + d) % 3].push(ev(*dev, TEMP, i * 1000, v, i));
        }
    }
    let mut results = Vec::new();
    for workers in [1, 2] {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c2 = calls.clone();
        let factory: ScorerFactory =
            Arc::new(move || (Box::new(Stub { calls: c2.clone() }) as Box<dyn Scorer>, None));
        let out = run(workers, parts.clone(), opts(100_000), move |s, c| {
            s.anomalies(factory.clone(), Dictionary::default(), c, StateIdle(None), None)
        });
        let mut alerts: Vec<(AlertKind, DeviceId, u64)> =
            out.data.iter().map(|(_, a)| (a.kind, a.key.device, a.key.window_start)).collect();
        alerts.sort();
        // Scored windows: every sample from the 8th on, per device.
        assert_eq!(Counters::get(&out.counters.windows_scored), 3 * (100 - 7));
        let n_calls = calls.load(Ordering::SeqCst);
        assert!(n_calls < 3 * 93, "batched: {n_calls} calls for {} windows", 3 * 93);
        results.push(alerts);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0][0], (AlertKind::Fired, DEV_A_SPIKE, 50_000));
    assert!(
        results[0].iter().all(|a| a.1 == DEV_A_SPIKE),
        "only the spiking device alerts: {:?}",
        results[0]
    );
    assert!(results[0].iter().any(|a| a.0 == AlertKind::Cleared), "the episode ends after the spike");
}

const DEV_A_SPIKE: DeviceId = DeviceId(101);

/// [`Stub`] with a per-series likelihood calibration (no short averaging, 20 warm-up scores)
/// and, if given, the records checks; a `silent` one always scores 0, so only the records
/// can alert.
struct CalibratedStub {
    range: Option<sensorflow_operators::RangeParams>,
    silent: bool,
}

/// The likelihood alone.
const CALIBRATED: CalibratedStub = CalibratedStub { range: None, silent: false };

/// The alerts the anomaly operator over `factory`'s scorers fires on `parts` at `workers`
/// workers (lateness far beyond the data, so no sample is late).
fn fired_anomalies(workers: usize, parts: &[Vec<Event>], factory: ScorerFactory) -> Vec<Alert> {
    let out = run(workers, parts.to_vec(), opts(100_000), move |s, c| {
        s.anomalies(factory.clone(), Dictionary::default(), c, StateIdle(None), None)
    });
    out.data.into_iter().map(|(_, a)| a).filter(|a| a.kind == AlertKind::Fired).collect()
}

impl Scorer for CalibratedStub {
    fn window(&self) -> usize {
        8
    }
    fn score_batch(&mut self, inputs: &[f32], out: &mut Vec<f32>) {
        out.clear();
        if self.silent {
            out.resize(inputs.len() / 8, 0.0);
        } else {
            out.extend(inputs.chunks(8).map(|w| (w[7] / 10.0).clamp(0.0, 1.0)));
        }
    }
    fn threshold(&self) -> f32 {
        sensorflow_operators::LIKELIHOOD_THRESHOLD
    }
    fn name(&self) -> &str {
        "calibrated"
    }
    fn calibration(&self) -> Option<sensorflow_operators::LikelihoodParams> {
        Some(sensorflow_operators::LikelihoodParams {
            short: 1,
            long: 1000.0,
            warmup: 20,
            min_std: 0.1,
            range: self.range,
            excursions: None,
        })
    }
}

#[test]
fn a_calibrated_model_alerts_on_calibrated_scores_after_its_warm_up_at_any_worker_count() {
    // Device A spikes at sample 15 (inside the calibration's warm-up: 8 for the first window
    // plus 20 scores) and at sample 70; device B never.
    let devices = [DeviceId(101), DeviceId(202)];
    let mut parts = vec![Vec::new(), Vec::new()];
    for i in 0..120u64 {
        for (d, dev) in devices.iter().enumerate() {
            let spike = d == 0 && (i == 15 || i == 70);
            let v = if spike { 100.0 } else { 10.0 + ((i * 7 + d as u64) % 5) as f64 * 0.1 };
            parts[(i as usize + d) % 2].push(ev(*dev, TEMP, i * 1000, v, i));
        }
    }
    let mut results = Vec::new();
    for workers in [1, 2] {
        let factory: ScorerFactory = Arc::new(|| (Box::new(CALIBRATED) as Box<dyn Scorer>, None));
        let mut fired: Vec<(DeviceId, u64, u64)> = fired_anomalies(workers, &parts, factory)
            .iter()
            .map(|a| {
                assert!((0.5..=1.0).contains(&a.value), "alerts carry the calibrated score: {}", a.value);
                (a.key.device, a.key.window_start, (a.value * 1e6) as u64)
            })
            .collect();
        fired.sort();
        results.push(fired);
    }
    assert_eq!(results[0], results[1]);
    let starts: Vec<(DeviceId, u64)> = results[0].iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(starts, vec![(DEV_A_SPIKE, 70_000)], "only the spike after the warm-up alerts");
}

#[test]
fn a_jump_beyond_a_series_range_alerts_with_score_one_and_a_trend_does_not_at_any_worker_count() {
    // Device A wobbles between 10.0 and 10.4 (typical step 0.16), dips to 5 at sample 30
    // (inside the range warm-up of 50: not flagged, but its range is now 5..10.4) and jumps to
    // 12 at sample 120, beyond the maximum by far more than 2 typical steps; device B climbs
    // 0.05 per sample with the same wobble, a new maximum nearly every sample but never a jump.
    let devices = [DeviceId(101), DeviceId(202)];
    let mut parts = vec![Vec::new(), Vec::new()];
    for i in 0..200u64 {
        let wobble = (i % 5) as f64 * 0.1;
        let a = match i {
            30 => 5.0,
            120 => 12.0,
            _ => 10.0 + wobble,
        };
        let b = 10.0 + wobble + 0.05 * i as f64;
        for (d, (dev, v)) in devices.iter().zip([a, b]).enumerate() {
            parts[(i as usize + d) % 2].push(ev(*dev, TEMP, i * 1000, v, i));
        }
    }
    let mut results = Vec::new();
    for workers in [1, 2] {
        let factory: ScorerFactory = Arc::new(|| {
            let range = sensorflow_operators::RangeParams {
                warmup: 50,
                steps: 2.0,
                run_margin: Some(3),
                level_margin: None,
            };
            (Box::new(CalibratedStub { range: Some(range), silent: true }) as Box<dyn Scorer>, None)
        });
        let mut fired: Vec<(DeviceId, u64, f64)> = fired_anomalies(workers, &parts, factory)
            .iter()
            .map(|a| (a.key.device, a.key.window_start, a.value))
            .collect();
        fired.sort_by_key(|f| (f.0, f.1));
        results.push(fired);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], vec![(DEV_A_SPIKE, 120_000, 1.0)], "only A's jump after the warm-up");
}
