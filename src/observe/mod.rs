//! What a run shows while it runs: the live state the workers append to (`telemetry`),
//! structured logs and trace export (`logging`), progress on a terminal or in plain lines
//! (`progress`), and the HTTP server with `/metrics`, `/alerts` and the dashboard (`http`).

pub mod http;
pub mod logging;
pub mod progress;
pub mod telemetry;
