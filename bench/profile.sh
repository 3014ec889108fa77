#!/usr/bin/env bash
# Profiles tollgate's request path under load: an instant emulator upstream, the gateway with
# auth, admission and metering on, oha at concurrency $CONC (default 64) (non-streaming, then streaming), and
# `perf record` (software cpu-clock, so it works where hardware counters are not exposed) on the
# gateway process. Writes perf reports to $OUT (default target/profile).
# Usage: bench/profile.sh [SECONDS] (CARGO_TARGET_DIR keeps the line-table build apart from the usual one)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${CONC:-64}
out=${OUT:-target/profile}
mkdir -p "$out"
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_STRIP=none cargo build --release -q --bin tollgate
bin="${CARGO_TARGET_DIR:-target}/release/tollgate"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
"$bin" emulate --port 0 --time-scale 1000000 --model-name m > "$work/emu.out" 2>/dev/null &
for _ in $(seq 100); do grep -q listening "$work/emu.out" 2>/dev/null && break; sleep 0.1; done
emu=$(grep -o 'http://[0-9.:]*' "$work/emu.out")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/tollgate.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[[backends]]
name = "emu"
url = "$emu"
[[models]]
name = "m"
backends = ["emu"]
capacity = { profile = "llama3-8b-h100-tp1", replicas = 64 }
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "bench"
tier = "standard"
TOML
key=$("$bin" keys create --tenant bench --config "$work/tollgate.toml" 2>/dev/null)
TOLLGATE_LOG=warn "$bin" serve --config "$work/tollgate.toml" > /dev/null 2>&1 &
gw=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
for mode in whole stream; do
  stream=$([ $mode = stream ] && echo ', "stream": true' || true)
  body="{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello to the benchmark.\"}],\"max_tokens\":16,\"ignore_eos\":true$stream}"
  oha --no-tui -z 3s -c "$conc" -m POST -H 'content-type: application/json' -H "authorization: Bearer $key" -d "$body" "http://127.0.0.1:$port/v1/chat/completions" > /dev/null
  perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$gw" -o "$out/$mode.data" -- sleep "$secs" 2> /dev/null &
  rec=$!
  oha --no-tui -z "${secs}s" -c "$conc" -m POST -H 'content-type: application/json' -H "authorization: Bearer $key" -d "$body" "http://127.0.0.1:$port/v1/chat/completions" | grep -E "Requests/sec|Success rate"
  wait $rec
  perf report -i "$out/$mode.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null | grep -v "^$" > "$out/$mode.txt"
  perf report -i "$out/$mode.data" --children --sort symbol --percent-limit 1.5 --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | sed "s/ *- *- *$//" | cut -c1-200 > "$out/$mode-children.txt"
  echo "$mode: $out/$mode.txt, $out/$mode-children.txt"
done
