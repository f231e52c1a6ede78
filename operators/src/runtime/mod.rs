//! Runtime support the operators share with the rest of the process: counters and gauges
//! ([`metrics`]), per-partition watermarks ([`watermark`]) and the wall-clock record of when
//! watermarks moved, for latency ([`clock`]).

pub mod clock;
pub mod metrics;
pub mod watermark;
