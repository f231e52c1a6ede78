//! sensorflow's dataflow vocabulary: the event model, and the timely operators the engine is
//! assembled from (sources, de-duplication, windows, threshold rules), one per module, as
//! extension traits on timely streams.
//!
//! Time is event time: the timely timestamp is milliseconds since the Unix epoch, and a batch
//! is stamped with a lower bound of its events' times (the source's watermark), so an
//! operator may close everything before `t` once its input frontier passes `t`.
//!
//! This crate has no Burn and no network I/O; model scoring comes in through a trait.
#![deny(missing_docs)]

pub mod alert;
pub mod anomaly;
pub mod clock;
pub mod dedupe;
pub mod event;
pub mod hash;
pub mod likelihood;
pub mod metrics;
pub mod names;
pub mod normalize;
pub mod record;
pub mod resolve;
pub mod rules;
pub mod source;
pub mod sync;
pub mod testing;
pub mod timefmt;
pub mod watermark;
pub mod window;

pub use alert::{Alert, AlertKey, AlertKind};
pub use anomaly::{Anomalies, Scorer, ScorerFactory, ScorerReload, CLEAR_MARGIN};
pub use clock::WatermarkClock;
pub use dedupe::{Dedupe, SeqCheck, SeqWindow, DEDUPE_HORIZON};
pub use event::{stable_hash, DeviceId, Event, MetricId, NO_SEQ};
pub use metrics::{Counters, LogHistogram, PartitionGauge, WorkerCounters};
pub use names::{Dictionary, Interner, Names};
pub use likelihood::{Calibration, ExcursionParams, Likelihood, LikelihoodParams, RangeParams, LIKELIHOOD_THRESHOLD};
pub use normalize::{OnlineNormalizer, SeriesWindow, CLIP, HORIZON};
pub use record::{DeadLetter, LateEvent, DEAD_LETTER_RAW_LIMIT};
pub use resolve::ResolveNames;
pub use rules::{glob_match, ApplyRules, Comparator, Control, DeviceMeta, Rule, RuleBook, TotalF64};
pub use source::{
    partitioned_source, BadRecordPolicy, BatchHook, BatchInfo, ErrorSlot, PartitionReader, Poll, SourceBatch,
    SourceContext, SourceError, SourceOptions, SourceStreams, VecReader,
};
pub use sync::lock;
pub use watermark::Watermarks;
pub use window::{canonical, Field, WindowAgg, WindowSpec, WindowSpecError, Windows};
