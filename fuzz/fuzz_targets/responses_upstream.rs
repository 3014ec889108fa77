#![no_main]
//! See `tollgate::fuzzing::responses_upstream`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::responses_upstream(data));
