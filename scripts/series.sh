#!/bin/bash
# make series: the whole change as a git format-patch series against the
# upstream base, as it would be mailed. A scratch repository holds the
# pristine version of every file our patches touch as its base commit; our
# new files and our patches then become commits in dependency order, so
# that each builds on the ones before it.
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

mapfile -t patches < <(grep -v '^\s*#' "$REPO/patches/series" | sed '/^\s*$/d')
for p in "${patches[@]}"; do
	grep -E '^--- a/' "$REPO/patches/$p" | sed 's|^--- a/||; s|\s.*||'
done | sort -u | while read -r f; do
	mkdir -p "$(dirname "$f")"; cp "$src/$f" "$f"
done
git add -A && git commit -qm "Linux $ver (files this series touches)" --allow-empty
base=$(git rev-parse HEAD)

commit_files() { # SUBJECT PATH...
	local subject=$1 p; shift
	for p in "$@"; do
		[ -e "$REPO/$p" ] || continue
		mkdir -p "$(dirname "$p")"
		if [ -d "$REPO/$p" ]; then
			mkdir -p "$p"; cp -a "$REPO/$p/." "$p/"
		else
			cp -a "$REPO/$p" "$p"
		fi
		git add -A "$p"
	done
	git diff --cached --quiet && return 0
	git commit -q -s -m "$subject"
}
apply() { # PATCH-NUMBER-PREFIX
	local p
	for p in "${patches[@]}"; do
		case $p in "$1"-*)
			git am -q "$REPO/patches/$p" || { git am --abort; die "$p does not apply"; } ;;
		esac
	done
}

apply 0002
commit_files "nvme-pci: add the live migration service for VF variant drivers" \
	include/linux/nvme-lm.h drivers/nvme/host
apply 0003
commit_files "rust: nvme_lm and vfio: bindings of the NVMe live migration service, VFIO variant drivers" rust
apply 0004
apply 0005
commit_files "vfio/pci: add nvme_vfio_pci, NVMe SR-IOV VF live migration (Rust)" \
	drivers/vfio/pci/nvme
apply 0001
commit_files "Documentation: nvme-vfio" Documentation
for p in "${patches[@]}"; do
	case $p in 000[1-5]-*) ;; *) apply "${p%%-*}" ;; esac
done

git format-patch -q --cover-letter -o "$out" "$base"..HEAD
ls "$out" >&2
echo "$out"
