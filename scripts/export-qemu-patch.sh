#!/bin/bash
# Developer helper: turn a QEMU working tree (a git repository whose first
# commit is the pristine source) into tests/qemu/patches/, one patch per
# commit after the first, with the commit messages as written.
#   scripts/export-qemu-patch.sh QEMU-GIT-TREE
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dev=${1:?usage: export-qemu-patch.sh QEMU-GIT-TREE}
base=$(git -C "$dev" rev-list --max-parents=0 HEAD)
dest="$REPO/tests/qemu/patches"
rm -f "$dest"/*.patch
git -C "$dev" format-patch -q --no-signature -o "$dest" "$base"..HEAD
(cd "$dest" && ls *.patch) >"$dest/series"
cat "$dest/series"
