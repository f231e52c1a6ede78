#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::mqtt`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::mqtt(data);
});
