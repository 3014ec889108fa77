#![no_main]
//! See `tollgate::fuzzing::request`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::request(data));
