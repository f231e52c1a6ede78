#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::nab`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::nab(data);
});
