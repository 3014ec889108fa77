//! Replays the fuzzing corpus kept in `fuzz/corpus/` (seeds, and every input `cargo fuzz` found
//! that reached new code) through the same entry points the fuzz targets call, so CI checks on
//! stable Rust that none of them panics. `scripts/fuzz.sh` runs the fuzzers themselves.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{} panics", path.display());
        }
        n += 1;
    }
    assert!(n >= 3, "{target}: only {n} inputs in the corpus");
}

#[test]
fn request_corpus() {
    replay("request", tollgate::fuzzing::request);
}

#[test]
fn sse_corpus() {
    replay("sse", tollgate::fuzzing::sse);
}

#[test]
fn config_corpus() {
    replay("config", tollgate::fuzzing::config);
}

/// The Messages stream translation reads the same input as the relay's (a piece length, then a
/// chat stream), so the SSE corpus drives it too.
#[test]
fn messages_translation_over_the_sse_corpus() {
    replay("sse", tollgate::fuzzing::messages_stream);
}

/// The same for the Responses stream translation.
#[test]
fn responses_translation_over_the_sse_corpus() {
    replay("sse", tollgate::fuzzing::responses_stream);
}

/// An Anthropic upstream's stream, whole answer and the chat request sent to it.
#[test]
fn anthropic_upstream_corpus() {
    replay("anthropic_upstream", tollgate::fuzzing::anthropic_upstream);
}

/// A Responses upstream's stream, whole answer and the chat request sent to it.
#[test]
fn responses_upstream_corpus() {
    replay("responses_upstream", tollgate::fuzzing::responses_upstream);
}
