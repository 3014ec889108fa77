#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests (the official `openai` Python
# client against the emulator, `tollgate calibrate` against a real llama.cpp server).
# Prepares what the tests need first (scripts/test-deps.sh; no root needed).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/test-deps.sh)"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Optimised: the validation test compares the live gateway's latencies with the simulator's, and
# an unoptimised gateway (tokenising, SSE relaying) adds latency no user would see.
cargo test --release --all-targets --locked
