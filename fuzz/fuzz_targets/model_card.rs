#![no_main]
//! Fuzz target: [`sensorflow::fuzzing::model_card`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sensorflow::fuzzing::model_card(data);
});
