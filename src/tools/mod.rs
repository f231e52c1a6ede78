//! Commands built on the engine: the device simulator's writer (`simulate`), recording any
//! source into a binary log (`record`), the MQTT → Kafka bridge (`bridge`), the user-facing
//! benchmarks (`bench`), the local cluster launcher (`cluster`), model and NAB evaluation
//! (`evaluate`) and PNG plots (`plot`).

pub mod bench;
pub mod bridge;
pub mod cluster;
pub mod evaluate;
pub mod plot;
pub mod record;
pub mod simulate;
pub mod train;
