#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::rules`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::rules(data);
});
