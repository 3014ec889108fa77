#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets: request parsing and validation, the SSE relay and
# the cache's stream assembly, configuration parsing) for SECONDS each (default 300) with
# cargo-fuzz on nightly Rust, growing fuzz/corpus/. Needs `cargo install cargo-fuzz` and
# `rustup toolchain install nightly`. Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
targets=${TARGETS:-"request sse config"}
cargo +nightly fuzz build -O -s none
for t in $targets; do
  echo "== $t ($secs s)"
  cargo +nightly fuzz run -O -s none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=65536 -timeout=10 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|Done|ERROR|panicked|SUMMARY|crash-|stat::" || true
done
# Keep the corpus small: only inputs that add coverage.
for t in $targets; do
  mkdir -p "/tmp/fuzz-min-$t"
  cargo +nightly fuzz cmin -O -s none "$t" "fuzz/corpus/$t" > /dev/null 2>&1 || true
done
