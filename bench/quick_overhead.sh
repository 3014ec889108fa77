#!/usr/bin/env bash
# Quick side-by-side: client latency direct to an (instant) emulator vs through tollgate, at
# concurrency 1 and 32, interleaved. The full benchmark harness comes with the performance issue.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin tollgate --example latency
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
# time-scale 1e6: the modelled engine time is negligible, so what is left is HTTP and gateway work.
./target/release/tollgate emulate --port 0 --time-scale 1000000 --model-name m > "$work/emu.out" 2>/dev/null &
for _ in $(seq 50); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
emu=$(grep -o 'http://[0-9.:]*' "$work/emu.out")
cat > "$work/tollgate.toml" <<TOML
listen = "127.0.0.1:18089"
data_dir = "$work/data"
[[backends]]
name = "emu"
url = "$emu"
[[models]]
name = "m"
backends = ["emu"]
[[tiers]]
name = "t"
input_price_per_1m = 1.0
output_price_per_1m = 1.0
[[tenants]]
name = "bench"
tier = "t"
TOML
key=$(./target/release/tollgate keys create --tenant bench --config "$work/tollgate.toml" 2>/dev/null)
TOLLGATE_LOG=warn ./target/release/tollgate serve --config "$work/tollgate.toml" > /dev/null 2>&1 &
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18089/health && break; sleep 0.1; done
echo "commit $(git rev-parse --short HEAD), $(date -u +%F), $(nproc) cores"
./target/release/examples/latency "$emu" http://127.0.0.1:18089 "$key" m 1 500 4
./target/release/examples/latency "$emu" http://127.0.0.1:18089 "$key" m 32 3200 4
