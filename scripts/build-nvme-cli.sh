#!/bin/bash
# Build nvme-cli with its Host Managed Live Migration plugin (`nvme lm`),
# which bookworm's nvme-cli 2.3 lacks: tests/vm/nvme-cli.sh drives the
# emulated controller with it, a host that is not ours.
#
# nvme-cli is Debian trixie's source package (isolated apt configuration,
# download only; apt checks the files against the signed Sources index,
# dpkg-source -x against the .dsc). Debian's mirror does not serve the
# libnvme source package (trixie's, forky's and sid's all answer 404), so
# libnvme is its release tarball as published on PyPI (the sdist of its
# Python bindings holds the whole C library), pinned by version and
# SHA-256: 1.15, not trixie's 1.13 (not on PyPI) nor 1.14, whose
# nvme_lm_cdq() puts the CNTLID of Create Controller Data Queue in CDW11
# bits 15:0, over PC, instead of CQS (bits 31:16), so that no CDQ can be
# created for a secondary controller; 1.15 is the first release with CQS
# at bit 16. libnvme is built as a static library with every optional feature
# off (no Python, docs, tests, json-c, OpenSSL, keyutils, liburing, D-Bus)
# and nvme-cli against it, nothing installed outside the cache: the binary
# needs only bookworm's libc at run time.
#
# Output: $CACHE/nvme-cli-build/<version>. A stamp keyed by a hash of every
# input skips the build when nothing changed.
#
# Prints nothing on stdout but the path of the nvme binary.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ISO_SUITE=trixie
LIBNVME_VER=1.15
LIBNVME_SHA256=ab3a66c0d070ba7e0f0fce3bd4b5a7d61699bed6a9988fd8d8d8cc912f15d7fe
LIBNVME_OPTS=(
	--buildtype=release -Ddefault_library=static --wrap-mode=nodownload
	-Dpython=disabled -Ddocs=false -Ddocs-build=false -Dtests=false -Dexamples=false
	-Djson-c=disabled -Dopenssl=disabled -Dkeyutils=disabled
	-Dliburing=disabled -Dlibdbus=disabled
)
NVME_CLI_OPTS=(
	--buildtype=release --wrap-mode=nodownload
	-Djson-c=disabled -Ddocs=false -Ddocs-build=false -Dnvme-tests=false
)
SRC="$CACHE/nvme-cli-src"

# fetch_nvme_cli: the unpacked trixie nvme-cli tree; sets NVME_CLI_VER.
# Asks apt only on the first run (or with REFRESH set), like fetch-qemu.sh.
fetch_nvme_cli() {
	local dest dl
	if [ -z "${REFRESH:-}" ] && [ -f "$SRC/current" ]; then
		NVME_CLI_VER=$(cat "$SRC/current")
		dest="$SRC/nvme-cli-${NVME_CLI_VER//[~+:]/_}"
		[ -f "$dest/.unpacked" ] && { echo "$dest"; return; }
	fi
	log "apt update ($ISO_SUITE sources, isolated)"
	isolated_apt apt-get "$ISO_SUITE" update >/dev/null
	# awk reads to the end (see fetch-qemu.sh: no SIGPIPE under pipefail).
	NVME_CLI_VER=$(isolated_apt apt-cache "$ISO_SUITE" showsrc nvme-cli 2>/dev/null |
		awk '/^Version:/ && !v { v = $2 } END { print v }')
	[ -n "$NVME_CLI_VER" ] || die "nvme-cli source not found in $ISO_SUITE"
	dest="$SRC/nvme-cli-${NVME_CLI_VER//[~+:]/_}"
	if [ ! -f "$dest/.unpacked" ]; then
		dl="$SRC/dl-${NVME_CLI_VER//[~+:]/_}"
		mkdir -p "$dl"
		log "downloading nvme-cli $NVME_CLI_VER source"
		(cd "$dl" && isolated_apt apt-get "$ISO_SUITE" source --download-only \
			"nvme-cli=$NVME_CLI_VER" >/dev/null)
		rm -rf "$dest" "$dest.tmp"
		# Checksums of the tarballs against the .dsc; the uploader's
		# signature cannot be checked without debian-keyring (a warning).
		dpkg-source --require-strong-checksums -x "$dl"/nvme-cli_*.dsc "$dest.tmp" \
			>/dev/null 2>"$dl/dpkg-source.log" ||
			{ cat "$dl/dpkg-source.log" >&2; die "dpkg-source -x nvme-cli failed"; }
		mv "$dest.tmp" "$dest"
		touch "$dest/.unpacked"
	fi
	echo "$NVME_CLI_VER" >"$SRC/current"
	echo "$dest"
}

# fetch_libnvme: the unpacked libnvme release tree (PyPI sdist, hash pinned).
fetch_libnvme() {
	local dest="$SRC/libnvme-$LIBNVME_VER" dl="$SRC/dl-libnvme-$LIBNVME_VER"
	if [ ! -f "$dest/.unpacked" ]; then
		mkdir -p "$dl"
		log "downloading libnvme $LIBNVME_VER source (PyPI sdist)"
		printf 'libnvme==%s --hash=sha256:%s\n' "$LIBNVME_VER" "$LIBNVME_SHA256" >"$dl/req.txt"
		# pip prepares the sdist's metadata (meson-python, in an isolated
		# build environment) but builds and installs nothing.
		/usr/bin/python3 -m pip download -q --no-deps --no-binary libnvme \
			--require-hashes -r "$dl/req.txt" -d "$dl" >&2 ||
			die "pip download libnvme==$LIBNVME_VER failed"
		echo "$LIBNVME_SHA256  $dl/libnvme-$LIBNVME_VER.tar.gz" | sha256sum -c --quiet ||
			die "libnvme-$LIBNVME_VER.tar.gz: SHA-256 mismatch"
		rm -rf "$dest" "$dest.tmp"
		mkdir -p "$dest.tmp"
		tar -xzf "$dl/libnvme-$LIBNVME_VER.tar.gz" -C "$dest.tmp" --strip-components=1
		mv "$dest.tmp" "$dest"
		touch "$dest/.unpacked"
	fi
	echo "$dest"
}

# meson_build NAME SRC BUILD OPTS...: configure once per option set, then
# ninja (which rebuilds what changed).
meson_build() {
	local name=$1 src=$2 build=$3
	shift 3
	if [ "$(cat "$build/.nvme-vfio-configured" 2>/dev/null)" != "$*" ]; then
		log "configuring $name"
		rm -rf "$build"
		mkdir -p "$build"
		meson setup "$build" "$src" "$@" >"$build/../$name-setup.log" 2>&1 ||
			{ tail -30 "$build/../$name-setup.log" >&2; die "$name: meson setup failed"; }
		echo "$*" >"$build/.nvme-vfio-configured"
	fi
}

ninja_build() { # NAME BUILD TARGET...
	local name=$1 build=$2
	shift 2
	log "building $name (ninja -j$JOBS)"
	ninja -C "$build" -j"$JOBS" "$@" >"$build/../$name-build.log" 2>&1 ||
		{ grep -E -A8 'error:|FAILED' "$build/../$name-build.log" | head -60 >&2
		  die "$name build failed ($build/../$name-build.log)"; }
}

cli_src=$(fetch_nvme_cli)
NVME_CLI_VER=$(cat "$SRC/current")
nvme_src=$(fetch_libnvme)
out="$CACHE/nvme-cli-build/${NVME_CLI_VER//[~+:]/_}"
bin="$out/nvme-cli/nvme"
mkdir -p "$out"

key=$(hash_inputs "nvme-cli $NVME_CLI_VER" "libnvme $LIBNVME_VER $LIBNVME_SHA256" \
	"${LIBNVME_OPTS[*]}" "${NVME_CLI_OPTS[*]}" "$REPO/scripts/build-nvme-cli.sh" \
	"$(cc --version | head -1)" "meson $(meson --version)" "ninja $(ninja --version)")
if [ "$(cat "$out/.nvme-vfio-stamp" 2>/dev/null)" = "$key" ] && [ -x "$bin" ]; then
	log "nvme-cli $NVME_CLI_VER (libnvme $LIBNVME_VER): up to date ($bin)"
	echo "$bin"; exit 0
fi

start=$(date +%s)
# Per libnvme version: another one reconfigures nvme-cli (its pkg-config
# path changes), which then finds the static libnvme through the prefix's
# pkg-config files only (no download, never the system's libnvme 1.3).
prefix="$out/libnvme-$LIBNVME_VER-prefix"
meson_build libnvme "$nvme_src" "$out/libnvme-$LIBNVME_VER" --prefix="$prefix" --libdir=lib \
	-Dversion-tag="$LIBNVME_VER" "${LIBNVME_OPTS[@]}"
ninja_build libnvme "$out/libnvme-$LIBNVME_VER" install
meson_build nvme-cli "$cli_src" "$out/nvme-cli" \
	-Dversion-tag="$NVME_CLI_VER" -Dpkg_config_path="$prefix/lib/pkgconfig" "${NVME_CLI_OPTS[@]}"
ninja_build nvme-cli "$out/nvme-cli" nvme

# The binary must stand alone: libnvme linked in, the lm plugin present.
! readelf -d "$bin" | grep -q 'NEEDED.*libnvme' || die "$bin links libnvme dynamically"
"$bin" lm help >/dev/null 2>&1 || "$bin" lm --help 2>&1 | grep -q migration-send ||
	die "$bin has no lm plugin"
log "nvme-cli $NVME_CLI_VER (libnvme $LIBNVME_VER) built in $(( $(date +%s) - start )) s"
echo "$key" >"$out/.nvme-vfio-stamp"
echo "$bin"
