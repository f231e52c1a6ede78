//! Runtime support the operators share with the rest of the process: counters and gauges
//! ([`metrics`]), per-partition watermarks ([`watermark`]) and the wall-clock record of when
//! watermarks moved, for latency ([`clock`]), the benchmarks' latency probes ([`probe`]), and the eviction of idle per-key state
//! ([`evict`]), and snapshots of operator state at cuts of event time ([`snapshot`]).

pub mod clock;
pub mod evict;
pub mod metrics;
pub mod probe;
pub mod snapshot;
pub mod watermark;
