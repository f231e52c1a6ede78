//! The timely operators, one per file, each an extension trait on a timely stream (the
//! sources are a function of the scope instead: they make streams rather than extend one).
//! Stateful operators exchange by device and emit once the input frontier has passed the
//! event time they close, never on arrival or on wall-clock time.

pub mod anomaly;
pub mod dedupe;
pub mod resolve;
pub mod rules;
pub mod source;
pub mod window;
