#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::csv_narrow`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::csv_narrow(data);
});
