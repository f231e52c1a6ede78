//! End-to-end tests of the engine: one binary, one module per area (STYLE.md rule 7).
#![allow(clippy::unwrap_used)]

mod bad_input;
mod binlog;
mod brokers;
mod cli;
mod cluster;
mod common;
mod dashboard;
mod devices;
mod fuzz_corpus;
mod http_client;
mod netns_cluster;
mod ops;
mod pipeline;
mod sources;
mod wide_csv;
