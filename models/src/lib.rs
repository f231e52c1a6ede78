//! sensorflow's models: the synthetic signal and anomaly generator (`synth`, pure Rust, shared
//! by the simulator source and training), the NAB v1.1 scorer (`nab`, pure Rust), and the
//! Burn anomaly detector (`detector`: data, teacher, distilled student, pruning, int8, model
//! files, evaluation and the optimization report).
#![deny(missing_docs)]

pub mod detector;
pub mod nab;
pub mod synth;
