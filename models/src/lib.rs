//! sensorflow's models: the synthetic signal and anomaly generator (`synth`, pure Rust, shared
//! by the simulator source and training), the NAB v1.1 corpus, scorer and result files (`nab`,
//! pure Rust), and the Burn anomaly detector (`detector`: data, teacher, distilled student,
//! pruning, int8, model files, evaluation and the optimization report), and the device-level
//! rig benchmark (`synth::rigs`: multivariate rigs with labelled faults; `rows`: per-row
//! scoring and naive baselines).
//!
//! The crate prints nothing: long-running steps report progress through a callback
//! ([`detector::optimize::Event`]), and errors are typed.
#![deny(missing_docs)]

pub mod detector;
pub mod device;
pub mod nab;
pub mod rows;
pub mod synth;
