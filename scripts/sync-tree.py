#!/usr/bin/env python3
"""Lay our overlay files and patches over a pristine Linux tree.

The working tree starts as a hard-linked copy of the pristine tree. Each run
computes what every file we own (overlay files, files our patches touch, and
the files we owned last time) must contain, and rewrites only the files whose
content differs, always by replace-then-rename so the pristine tree behind
the hard links is never modified. Unchanged files keep their mtime, so an
out-of-tree Kbuild build stays incremental.

usage: sync-tree.py PRISTINE TREE [--overlay ROOT DIR,DIR...] [--series FILE]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

OWNED_LIST = ".nvme-vfio-owned"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_replace(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".sync-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode if mode is not None else 0o644)
    os.replace(tmp, path)


def overlay_files(repo, dirs):
    out = {}
    for top in dirs:
        base = os.path.join(repo, top)
        for root, _dirs, files in os.walk(base):
            for name in files:
                if name.endswith("~") or name.startswith(".#"):
                    continue
                full = os.path.join(root, name)
                out[os.path.relpath(full, repo)] = full
    return out


def series(path):
    if not path or not os.path.exists(path):
        return []
    names = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(os.path.join(os.path.dirname(os.path.abspath(path)), line))
    return names


def patched_paths(patch):
    paths = set()
    for line in open(patch, errors="replace"):
        m = re.match(r"^(?:\+\+\+|---) (?:a|b)/(\S+)", line)
        if m:
            paths.add(m.group(1))
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pristine")
    ap.add_argument("tree")
    ap.add_argument("--overlay", nargs=2, metavar=("ROOT", "DIRS"))
    ap.add_argument("--series")
    a = ap.parse_args()
    pristine, tree = os.path.abspath(a.pristine), os.path.abspath(a.tree)
    if not os.path.isdir(tree):
        tmp = tree + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["cp", "-al", pristine, tmp], check=True)
        os.rename(tmp, tree)

    desired = {}
    repo, dirs = (a.overlay[0], a.overlay[1].split(",")) if a.overlay else (None, [])
    for rel, full in (overlay_files(repo, dirs) if repo else {}).items():
        if os.path.exists(os.path.join(pristine, rel)):
            sys.exit(f"sync-tree: {rel} exists upstream: change it with a patch in patches/, not the overlay")
        desired[rel] = read(full)

    patches = series(a.series)
    if patches:
        with tempfile.TemporaryDirectory(prefix="nvme-vfio-stage-") as stage:
            touched = set()
            for p in patches:
                touched |= patched_paths(p)
            for rel in touched:
                if rel in desired:
                    sys.exit(f"sync-tree: {os.path.basename(p)} touches overlay file {rel}")
                src = os.path.join(pristine, rel)
                if os.path.exists(src):
                    os.makedirs(os.path.dirname(os.path.join(stage, rel)), exist_ok=True)
                    shutil.copy2(src, os.path.join(stage, rel))
            for p in patches:
                r = subprocess.run(
                    ["patch", "-d", stage, "-p1", "-f", "-s", "--no-backup-if-mismatch", "-i", p],
                    capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"sync-tree: {os.path.basename(p)} does not apply:\n{r.stdout}{r.stderr}")
            for rel in touched:
                desired[rel] = read(os.path.join(stage, rel))

    owned_path = os.path.join(tree, OWNED_LIST)
    before = set((read(owned_path) or b"").decode().split())
    changed = 0
    for rel in sorted(before | set(desired)):
        want = desired[rel] if rel in desired else read(os.path.join(pristine, rel))
        dst = os.path.join(tree, rel)
        if read(dst) == want:
            continue
        changed += 1
        if want is None:
            os.unlink(dst)
        else:
            src = os.path.join(pristine, rel)
            mode = os.stat(src).st_mode & 0o777 if os.path.exists(src) else None
            write_replace(dst, want, mode)
    write_replace(owned_path, "".join(f"{r}\n" for r in sorted(desired)).encode())
    print(f"sync-tree: {len(desired)} owned files, {changed} rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
