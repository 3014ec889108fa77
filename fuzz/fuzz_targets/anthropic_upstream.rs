#![no_main]
//! See `tollgate::fuzzing::anthropic_upstream`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::anthropic_upstream(data));
