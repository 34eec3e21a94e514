#!/bin/bash
# Install everything the build and the test VM need. Idempotent: a second
# run on a prepared machine only checks and returns in a few seconds.
#
# Binaries come from bookworm and bookworm-backports only. Sources from
# trixie are fetched later through an isolated apt configuration
# (scripts/fetch-*.sh), never through the system's sources.
set -euo pipefail

log() { printf 'deps: %s\n' "$*"; }

BPO=/etc/apt/sources.list.d/bookworm-backports.sources
APT_PKGS=(
	bc flex bison libssl-dev libelf-dev cpio kmod ccache make gcc
	clang-19 lld-19 llvm-19 libclang-19-dev
	ninja-build libglib2.0-dev libpixman-1-dev libattr1-dev python3-venv python3-pip pkg-config
	nvme-cli pciutils busybox-static xz-utils zstd rsync dpkg-dev
	iproute2 procps util-linux
)
BPO_PKGS=(qemu-system-x86 qemu-utils meson python3-pycotap)

need_apt=()
for p in "${APT_PKGS[@]}" "${BPO_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		need_apt+=("$p")
done
# qemu-system-x86 must be the 10.x from backports, meson >= 1.5.
if dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null | grep -q '^1:7\.'; then
	need_apt+=(qemu-system-x86)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
	if [ ! -f "$BPO" ]; then
		log "adding bookworm-backports"
		cat >"$BPO" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
	log "apt: ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${APT_PKGS[@]}" >/dev/null
	apt-get install -y -qq --no-install-recommends -t bookworm-backports \
		"${BPO_PKGS[@]}" >/dev/null
fi

if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "rustup: rust-src"
	rustup component add rust-src
fi
for c in rustfmt clippy; do
	rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

BINDGEN_VER=0.73.2
if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VER"; then
	log "cargo install bindgen-cli $BINDGEN_VER"
	cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VER"
fi
log "ok"
