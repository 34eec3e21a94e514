#!/bin/bash
# make series: the whole change as a git format-patch series against the
# upstream base, as it would be mailed. A scratch repository holds the
# pristine version of every file we touch as its base commit; each area of
# the overlay becomes one commit, then each of our patches (which wire the
# new files into Kconfig and Makefiles) becomes one.
# Output: $CACHE/series/*.patch (path printed last).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=$(bash "$REPO/scripts/fetch-linux.sh")
ver=$(cat "$CACHE/linux-src/current")
work=$(mktemp -d "$CACHE/series-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$CACHE/series"
rm -rf "$out"; mkdir -p "$out"

cd "$work"
git init -q .
git config user.name "nvme-vfio developers"
git config user.email "nvme-vfio@example.invalid"

# Base: the pristine files our patches touch.
mapfile -t patches < <(grep -v '^\s*#' "$REPO/patches/series" | sed '/^\s*$/d')
for p in "${patches[@]}"; do
	grep -E '^--- a/' "$REPO/patches/$p" | sed 's|^--- a/||; s|\s.*||'
done | sort -u | while read -r f; do
	mkdir -p "$(dirname "$f")"; cp "$src/$f" "$f"
done
git add -A && git commit -qm "Linux $ver (files this series touches)" --allow-empty
base=$(git rev-parse HEAD)

commit_area() { # AREA-DIR SUBJECT
	[ -d "$REPO/$1" ] || return 0
	mkdir -p "$1"; cp -a "$REPO/$1/." "$1/"
	git add -A "$1"
	git diff --cached --quiet && return 0
	git commit -q -s -m "$2"
}
commit_area drivers/vfio/pci/nvme "vfio/pci: add nvme_vfio_pci, NVMe SR-IOV VF live migration (Rust)"
commit_area Documentation "Documentation: nvme-vfio"

for p in "${patches[@]}"; do
	git am -q "$REPO/patches/$p" || { git am --abort; die "$p does not apply"; }
done

git format-patch -q --cover-letter -o "$out" "$base"..HEAD
ls "$out" >&2
echo "$out"
