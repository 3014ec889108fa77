#!/usr/bin/env bash
# Prefix-aware placement against round-robin and least-loaded on the Mooncake synthetic trace
# (data/traces/mooncake/, scenarios/mooncake-prefix.toml: four Llama-3-8B replicas).
#   1. the simulator over the whole trace (3,993 requests) at several loads;
#   2. the live gateway in front of four emulated engines (one per replica) for DURATION seconds
#      of the trace, with the simulator replaying the same requests beside it (`tollgate validate`).
# Prints a Markdown table per part; JSON in target/placement/. About 4 + 3 x DURATION/60 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-120}
LIVE_LOAD=${LIVE_LOAD:-1.5}
LOADS=${LOADS:-"1.0 1.25 1.5 2.0"}
out=target/placement
mkdir -p "$out"
cargo build --release --quiet
bin=target/release/tollgate
for load in $LOADS; do
  for p in round-robin least-loaded prefix; do
    $bin simulate scenarios/mooncake-prefix.toml --policy fifo --placement "$p" --overload "$load" \
      --no-hindsight --quiet --json "$out/sim-$p-$load.json" > /dev/null 2>&1
  done
done
for p in round-robin least-loaded prefix; do
  $bin validate scenarios/mooncake-prefix.toml --placement "$p" --overload "$LIVE_LOAD" --duration "$DURATION" \
    --json "$out/live-$p.json" \
    > "$out/live-$p.txt" 2>&1 || true
done
python3 - "$out" "$LOADS" "$LIVE_LOAD" "$DURATION" <<'PY'
import json, sys
out, loads, live_load, duration = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
names = ["round-robin", "least-loaded", "prefix"]
print("Simulator, whole trace (3,993 requests), FIFO admission, 60 s queue timeout\n")
print("| load | placement | served | served/s | TTFT p50 s | TTFT p95 s | TTFT <= 10 s | prefix-cache hit share |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for load in loads:
    for p in names:
        d = json.load(open(f"{out}/sim-{p}-{load}.json"))
        pol = d["policies"][0]; t = pol["tiers"][0]
        print(f"| {load}x | {p} | {t['served']} | "
              f"{t['served'] / d['duration_s']:.2f} | {t['ttft_p50_s']:.2f} | {t['ttft_p95_s']:.2f} | "
              f"{t['ttft_attainment'] * 100:.1f}% | {pol['prefix_hit_share'] * 100:.1f}% |")
print(f"\nLive gateway (4 emulated engines, one per replica, bid-price admission), first {duration} s of the trace at {live_load}x, and the simulator on the same requests\n")
print("| placement | requests | served live / sim | live TTFT p50 / p95 s | sim TTFT p50 / p95 s | live e2e p50 / p95 s | live vs sim beyond 10% |")
print("|---|---:|---:|---:|---:|---:|---|")
for p in names:
    try:
        d = json.load(open(f"{out}/live-{p}.json"))
    except FileNotFoundError:
        print(f"| {p} | (failed: see {out}/live-{p}.txt) | | | | | |"); continue
    l, s = d["live"], d["simulated"]
    off = ", ".join(f"{c['metric']} {100 * c['relative_difference']:.0f}%" for c in d["checks"] if not c["ok"]) or "none"
    print(f"| {p} | {l['requests']} | {l['served']} / {s['served']} | {l['ttft_p50_s']:.2f} / {l['ttft_p95_s']:.2f} | "
          f"{s['ttft_p50_s']:.2f} / {s['ttft_p95_s']:.2f} | {l['e2e_p50_s']:.2f} / {l['e2e_p95_s']:.2f} | {off} |")
PY
