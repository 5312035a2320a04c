"""Pack a Serve application's code into a content-addressed zip.

    python3 pack_app.py SRC_DIR DEST_DIR NAME

Writes DEST_DIR/NAME-<sha12>.zip with one top-level directory (what Ray's
runtime_env working_dir expects from a file:// URI). The name changes with
the content, so new code means a new URI and Serve restarts the replicas;
the bytes are reproducible (sorted entries, fixed timestamps and modes), so
re-packing identical code changes nothing on the hosts. Prints JSON.
"""

import hashlib
import json
import os
import sys
import zipfile

SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")


def files(src):
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            if not name.endswith(SKIP_SUFFIXES):
                path = os.path.join(root, name)
                yield os.path.relpath(path, src).replace(os.sep, "/"), path


def main():
    src, dest, name = sys.argv[1:4]
    if not os.path.isdir(src):
        sys.exit(f"{src}: no such directory (the application's `code`)")
    entries = list(files(src))
    if not entries:
        sys.exit(f"{src}: no files to ship")
    digest = hashlib.sha256()
    for rel, path in entries:
        digest.update(rel.encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    sha = digest.hexdigest()[:12]
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, f"{name}-{sha}.zip")
    if not os.path.exists(target):
        partial = target + ".partial"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for rel, path in entries:
                info = zipfile.ZipInfo(f"{name}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as handle:
                    archive.writestr(info, handle.read())
        os.replace(partial, target)
    print(json.dumps({"path": target, "file": os.path.basename(target), "sha": sha,
                      "files": [rel for rel, _ in entries]}))


if __name__ == "__main__":
    main()
