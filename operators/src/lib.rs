//! sensorflow's dataflow vocabulary: the event model, and the timely operators the engine is
//! assembled from, as extension traits on timely streams.
//!
//! Time is event time: the timely timestamp is milliseconds since the Unix epoch, and a batch
//! is stamped with a lower bound of its events' times (the source's watermark), so an
//! operator may close everything before `t` once its input frontier passes `t`.
//!
//! The folders say what their code is:
//! - the crate root holds the vocabulary: [`event`] (events and ids), [`alert`], [`diverted`]
//!   (dead letters and late events: what sources divert beside good events), [`names`] (the
//!   name dictionary beside the stream), [`timefmt`], [`hash`], [`sync`] and [`testing`]
//!   (capturing a stream's output in tests and examples);
//! - [`ops`]: the operators, one per file (source, dedupe, window, anomaly, rules, resolve);
//! - [`rules`]: threshold rules, the control records that change them, the rule book;
//! - [`scoring`]: the [`Scorer`] trait models implement, normalisation and the per-series
//!   calibration of raw scores;
//! - [`runtime`]: counters, watermarks and the watermark clock the operators report to, the
//!   eviction of idle state, and snapshots of operator state for exact recovery.
//!
//! Everything a user needs is re-exported here, at the crate root.
//!
//! This crate has no Burn, no network I/O and no terminal UI; model scoring comes in through
//! a trait.
#![deny(missing_docs)]

pub mod alert;
pub mod diverted;
pub mod event;
pub mod hash;
pub mod names;
pub mod ops;
pub mod rules;
pub mod runtime;
pub mod scoring;
pub mod sync;
pub mod testing;
pub mod timefmt;

pub use alert::{Alert, AlertKey, AlertKind};
pub use diverted::{DeadLetter, LateEvent, DEAD_LETTER_RAW_LIMIT};
pub use event::{stable_hash, DeviceId, Event, MetricId, NO_SEQ};
pub use names::{Dictionary, Interner, Names};
pub use ops::anomaly::Anomalies;
pub use ops::dedupe::{Dedupe, SeqCheck, SeqWindow, MAX_SEQ_RUNS};
pub use ops::devices::{
    DeviceRows, RowModel, RowModelFactory, RowPhase, RowVerdict, ScoreSink, ScoredRow, DEVICE_MODEL_SOURCE,
};
pub use ops::resolve::ResolveNames;
pub use ops::rules::ApplyRules;
pub use ops::source::{
    partitioned_source, BadRecordPolicy, BatchHook, BatchInfo, ClockGuard, ErrorSlot, PartitionReader, Poll,
    SourceBatch, SourceContext, SourceError, SourceOptions, SourceStreams, VecReader,
};
pub use ops::window::{canonical, Field, WindowAgg, WindowSpec, WindowSpecError, Windows};
pub use rules::{glob_match, Comparator, Control, DeviceMeta, Rule, RuleBook, TotalF64};
pub use runtime::clock::WatermarkClock;
pub use runtime::evict::{Evictor, StateIdle};
pub use runtime::metrics::{
    ClockRejections, Counters, LogHistogram, PartitionGauge, WorkerCounters, CLOCK_DEVICES_NAMED,
};
pub use runtime::snapshot::{Cutter, Restored, SnapshotError, Snapshots, SNAPSHOT_FORMAT};
pub use runtime::watermark::{DeviceClocks, EventTimeMode, Watermarks};
pub use scoring::{
    Calibration, ExcursionParams, Likelihood, LikelihoodParams, OnlineNormalizer, RangeParams, Scorer,
    ScorerFactory, ScorerReload, SeriesWindow, CLEAR_MARGIN, CLIP, HORIZON, LIKELIHOOD_THRESHOLD,
};
pub use sync::lock;
