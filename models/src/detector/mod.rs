//! The anomaly detector: synthetic training data, a convolutional teacher, a distilled MLP
//! student, pruning, int8 quantization, model files, evaluation, and the optimization steps
//! (`optimize`: train → distil → prune → quantize) that write the optimization report.

pub mod artifact;
pub mod data;
pub mod evaluate;
pub mod inference;
pub mod model;
pub mod optimize;
pub mod training;
