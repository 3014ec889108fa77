#![no_main]
//! See `tollgate::fuzzing::sse`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::sse(data));
