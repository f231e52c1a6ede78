#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::json_fallback`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::json_fallback(data);
});
