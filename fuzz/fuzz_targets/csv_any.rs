#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::csv_any`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::csv_any(data);
});
