"""Downloads one file of a PyPI release without building or installing it.

`pip download` of an sdist prepares its metadata, which builds its build dependencies; this
fetches the file through PyPI's simple JSON API instead and checks its sha256.

Usage: pypi_fetch.py PROJECT FILENAME OUT_DIR   (index: $PIP_INDEX_URL or https://pypi.org/simple)
"""
import hashlib
import json
import os
import sys
import urllib.request

project, filename, out_dir = sys.argv[1:4]
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
req = urllib.request.Request(f"{index}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=120))["files"]
match = [f for f in files if f["filename"] == filename]
if not match:
    sys.exit(f"{filename} not found in {index}/{project}/")
f = match[0]
dest = os.path.join(out_dir, filename)
h = hashlib.sha256()
with urllib.request.urlopen(f["url"], timeout=600) as r, open(dest + ".part", "wb") as out:
    while chunk := r.read(1 << 20):
        h.update(chunk)
        out.write(chunk)
if h.hexdigest() != f["hashes"]["sha256"]:
    os.remove(dest + ".part")
    sys.exit(f"sha256 mismatch for {filename}")
os.replace(dest + ".part", dest)
print(dest)
