#!/usr/bin/env bash
# The added latency of shared state: in-process vs Redis vs Redis + PostgreSQL (bench/state.py).
# Needs redis-server and PostgreSQL (apt-get install redis-server postgresql) and oha
# (cargo install oha). About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
command -v oha > /dev/null || cargo install oha --version 1.16.0 --locked
python3 bench/state.py --tollgate target/release/tollgate --oha "$(command -v oha)" "$@"
