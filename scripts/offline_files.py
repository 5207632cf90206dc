#!/usr/bin/env python3
"""Trunk's post-build hook (Trunk.toml): makes a release build an offline, installable copy.

Writes sw.js (from web/sw.js) with the list of every file of the build and a version that is
the hash of their contents, so that each build is one cache and a new build replaces it whole;
and writes the engine's wasm size into index.html, so that the page can show the download's
progress even where the server compresses it (and so gives no length). Dev builds get neither:
the dev page registers no service worker (a cached page would hide every edit).
"""
import hashlib
import json
import os
import pathlib
import re
import sys

ENGINE = "gdl-lab-worker_bg.wasm"


def main():
    if os.environ.get("TRUNK_PROFILE") != "release":
        return
    staging = pathlib.Path(os.environ["TRUNK_STAGING_DIR"])
    source = pathlib.Path(os.environ.get("TRUNK_SOURCE_DIR", "."))
    engine = staging / ENGINE
    if not engine.is_file():
        sys.exit(f"offline_files.py: the build has no {ENGINE}; did the worker's name change?")
    index = staging / "index.html"
    html = index.read_text()
    html, found = re.subn(r'(<meta name="gdl-lab-engine-bytes" content=")[^"]*(")',
                          rf"\g<1>{engine.stat().st_size}\g<2>", html)
    if found != 1:
        sys.exit("offline_files.py: index.html lost its gdl-lab-engine-bytes meta tag")
    index.write_text(html)

    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                   if p.is_file() and p.name != "sw.js")
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (staging / name).read_bytes())
    version = digest.hexdigest()[:16]
    # "./" is how the page is opened; index.html how it may be.
    listed = json.dumps(["./"] + files, indent=2)
    worker = (source / "web" / "sw.js").read_text()
    worker = worker.replace("'__VERSION__'", f"'{version}'").replace("__FILES__", listed)
    (staging / "sw.js").write_text(worker)
    total = sum((staging / name).stat().st_size for name in files)
    print(f"offline copy: version {version}, {len(files)} files, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
