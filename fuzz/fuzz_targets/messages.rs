#![no_main]
//! See `tollgate::fuzzing::messages_stream`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate::fuzzing::messages_stream(data));
