//! sensorflow's models. For now: the synthetic signal and anomaly generator shared by the
//! simulator source and (with the model issue) training. Burn models will live behind a
//! `burn` module boundary so the generator compiles and tests without Burn.
#![deny(missing_docs)]

pub mod detector;
pub mod nab;
pub mod synth;
