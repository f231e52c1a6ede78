//! The anomaly detector: synthetic training data, a convolutional teacher, a distilled MLP
//! student, pruning, int8 quantization, model files, evaluation and the optimization report.

pub mod artifact;
pub mod data;
pub mod evaluate;
pub mod inference;
pub mod model;
pub mod pipeline;
pub mod training;
