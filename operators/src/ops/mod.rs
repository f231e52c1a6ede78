//! The timely operators, one per file, each an extension trait on a timely stream (the
//! sources are a function of the scope instead: they make streams rather than extend one).
//! Stateful operators exchange by device and emit once the input frontier has passed the
//! event time they close, never on arrival or on wall-clock time.

use std::collections::BTreeMap;

use timely::dataflow::operators::{Capability, InputCapability};

pub mod anomaly;
pub mod dedupe;
pub mod devices;
pub mod resolve;
pub mod rules;
pub mod source;
pub mod window;

/// Batches kept, by time, under a capability for that time until a frontier passes it.
pub(crate) type Held<D> = BTreeMap<u64, (Capability<u64>, Vec<D>)>;

/// Adds one stamp's containers to `held` under a capability for the stamp's least time: the
/// stash of every operator that waits for a second input's frontier before emitting.
pub(crate) fn hold<D>(held: &mut Held<D>, cap: InputCapability<u64>, data: std::slice::IterMut<'_, Vec<D>>) {
    let Some(cap) = cap.retain_least(0) else { return };
    let slot = held.entry(*cap.time()).or_insert_with(|| (cap, Vec::new()));
    for batch in data {
        slot.1.append(batch);
    }
}
