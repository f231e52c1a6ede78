#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::row_card`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::row_card(data);
});
