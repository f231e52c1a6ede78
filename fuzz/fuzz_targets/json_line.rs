#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::json_line`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::json_line(data);
});
