#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::binlog`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::binlog(data);
});
