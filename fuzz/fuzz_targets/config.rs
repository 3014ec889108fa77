#![no_main]
//! See `tollgate::fuzzing::config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::config(data));
