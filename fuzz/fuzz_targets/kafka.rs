#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::kafka`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::kafka(data);
});
