#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::run_config`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::run_config(data);
});
