#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::binlog_chunk`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::binlog_chunk(data);
});
