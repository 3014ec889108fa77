#!/usr/bin/env bash
# Regenerates docs/benchmarks.md: the side-by-side HTTP benchmark (direct, nginx, a plain proxy
# on Pingora, the bare axum+reqwest floor, tollgate, LiteLLM's proxy; bench/harness.py with oha;
# many open streams through tollgate, nginx and Pingora, bench/streams.py) and the criterion
# micro-benchmarks (benches/micro.rs), on this machine, everything on loopback.
#
#   bench/run.sh                 # about 15 minutes on 2 cores
#   SECONDS_PER_RUN=2 ROUNDS=1 bench/run.sh   # a quick look (about 4 minutes)
#   NO_LITELLM=1 bench/run.sh    # without LiteLLM (no PyPI download)
#   STREAMS=2000 bench/run.sh    # fewer streams held open at once (default 10,000)
#
# Installs what is missing: oha (cargo install), nginx and cmake (apt, as root), LiteLLM's proxy (pip, in a
# venv under target/). Results: target/bench/results.json and docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-5}
rounds=${ROUNDS:-3}
out=target/bench
mkdir -p "$out"
log() { echo "[bench] $*" >&2; }

cargo build --release -q --bin tollgate --example bare_proxy --example open_streams
oha=$(command -v oha || true)
if [ -z "$oha" ]; then
  log "installing oha (cargo install)"
  cargo install -q oha --version 1.16.0 --locked
  oha=$(command -v oha || echo "$HOME/.cargo/bin/oha")
fi
if ! command -v nginx > /dev/null; then
  log "installing nginx (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light > /dev/null
fi
if ! command -v cmake > /dev/null; then
  log "installing cmake (apt; Pingora's zlib-ng needs it)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake > /dev/null
fi
# The Pingora floor is a crate of its own (bench/pingora-floor), never part of tollgate's build.
CARGO_TARGET_DIR=target/pingora-floor cargo build --release -q --locked --manifest-path bench/pingora-floor/Cargo.toml
litellm_args=()
if [ -z "${NO_LITELLM:-}" ]; then
  venv=$out/litellm-venv
  if [ ! -x "$venv/bin/litellm" ]; then
    log "installing LiteLLM's proxy in $venv (pip)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]==1.106.2'
  fi
  litellm_args=(--litellm "$venv/bin/litellm")
fi

log "HTTP benchmark: ${secs} s per run, ${rounds} rounds"
python3 bench/harness.py --tollgate target/release/tollgate --oha "$oha" \
  --bare target/release/examples/bare_proxy --pingora target/pingora-floor/release/pingora-floor "${litellm_args[@]}" \
  --open-streams target/release/examples/open_streams --streams "${STREAMS:-10000}" \
  --semantic-model-dir "$(bash scripts/install-embeddings.sh)" \
  --seconds "$secs" --rounds "$rounds" --out "$out/results.json"

log "criterion micro-benchmarks"
rm -rf target/criterion
cargo bench -q --bench micro -- --warm-up-time 1 --measurement-time 3 > "$out/criterion.txt" 2>&1

versions="oha $("$oha" --version | awk '{print $2}'), $(nginx -v 2>&1 | sed 's/.*version: //')"
if [ ${#litellm_args[@]} -gt 0 ]; then
  versions="$versions, LiteLLM $("$venv/bin/pip" show litellm 2>/dev/null | awk '/^Version/ {print $2}')"
fi
python3 bench/report.py --results "$out/results.json" --criterion target/criterion --out docs/benchmarks.md \
  --versions "Tools: $versions."
log "wrote docs/benchmarks.md"
