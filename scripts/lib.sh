# Shared settings for the build and test scripts. Sourced, not run.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${NVME_VFIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nvme-vfio}
mkdir -p "$CACHE"

LINUX_PKG=linux-source-7.3
LINUX_SUITE=trixie-backports
QEMU_SUITE=trixie
LLVM_SUFFIX=-19
JOBS=${JOBS:-$(( $(nproc) + 1 ))}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# isolated_apt apt-get|apt-cache SUITE ARGS...
# An apt configuration of its own, for fetching from Debian suites that
# must never become binary sources of this bookworm system. Download only.
isolated_apt() {
	local tool=$1 d="$CACHE/apt-$2"; shift 2
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	if [ ! -f "$d/sources.list" ]; then
		printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n' "$ISO_SUITE" >"$d/sources.list"
		printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n' "$ISO_SUITE" >>"$d/sources.list"
	fi
	"$tool" -q \
		-o Dir::Etc::SourceList="$d/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::Etc::Preferences=/dev/null \
		-o Dir::Etc::PreferencesParts=/dev/null \
		-o Dir::State::Lists="$d/lists" \
		-o Dir::Cache="$d/cache" \
		-o APT::Get::AllowUnauthenticated=false \
		-o APT::Sandbox::User=root \
		"$@"
}

# Hash of files and strings, for cache keys.
hash_inputs() {
	{
		for a in "$@"; do
			if [ -d "$a" ]; then
				(cd "$a" && find . -type f ! -name '*~' -print0 | LC_ALL=C sort -z |
					xargs -0 -r sha256sum)
			elif [ -f "$a" ]; then
				sha256sum "$a"
			else
				printf '%s\n' "$a"
			fi
		done
	} | sha256sum | cut -c1-16
}
