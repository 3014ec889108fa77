#!/usr/bin/env bash
# Soak: MINUTES (default 30) of mixed streaming load with random upstream faults through a
# `tollgate serve` process (tests/soak.rs), then the end-of-run checks (ledger rows = requests
# sent, nothing held, descriptors, tasks and RSS flat after warm-up). Figures: target/soak.json,
# copied to bench/results/soak-<minutes>m.json.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
TOLLGATE_SOAK_SECS=$((minutes * 60)) cargo test --release --locked --test soak -- --nocapture
mkdir -p bench/results
cp target/soak.json "bench/results/soak-${minutes}m.json"
