//! Helpers for tests and examples that capture a stream's output.

use std::sync::mpsc::Receiver;

use timely::dataflow::operators::capture::Event as CaptureEvent;

/// All records a `capture()`d stream produced, in arrival order, each with the least time of
/// its message's stamp.
pub fn captured_with_times<T, D>(rx: &Receiver<CaptureEvent<T, Vec<D>>>) -> Vec<(T, D)>
where
    T: Clone + Ord,
{
    let mut out = Vec::new();
    for event in rx.try_iter() {
        if let CaptureEvent::Messages(stamp, data) = event {
            let Some(t) = stamp.iter().min().cloned() else {
                continue;
            };
            out.extend(data.into_iter().map(|d| (t.clone(), d)));
        }
    }
    out
}

/// All records a `capture()`d stream produced, in arrival order.
pub fn captured<T: Clone + Ord, D>(rx: &Receiver<CaptureEvent<T, Vec<D>>>) -> Vec<D> {
    captured_with_times(rx).into_iter().map(|(_, d)| d).collect()
}
