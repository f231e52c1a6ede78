#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::http_query`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::http_query(data);
});
