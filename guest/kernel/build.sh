#!/usr/bin/env bash
# Builds novm's default guest kernel (an uncompressed ELF vmlinux with a PVH
# entry note) from Debian's linux-source-6.1, this folder's config fragment
# and patches. The result is cached outside the repository under a key that
# hashes the source package version and every input here, so CI and later
# builds reuse it. Usage: build.sh OUT (OUT becomes a copy of the kernel).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT}
src_tar=/usr/src/linux-source-6.1.tar.xz
if [ ! -f "$src_tar" ]; then
	echo "build.sh: $src_tar missing; install it: apt-get install linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev" >&2
	exit 1
fi
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "linux-source-6.1 $src_version"; cat "$here/build.sh" "$here/config.fragment" "$here"/patches/*.patch; } | sha256sum | cut -c1-16)
cache=${NOVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/novm}/kernel-$key
if [ ! -f "$cache/vmlinux" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/novm-kernel.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	echo "building guest kernel $key in $work (a few minutes, once)" >&2
	tar -C "$work" -xf "$src_tar"
	cd "$work/linux-source-6.1"
	for p in "$here"/patches/*.patch; do patch -p1 --quiet < "$p"; done
	# Reproducible: fixed build identity and timestamp.
	export KBUILD_BUILD_USER=novm KBUILD_BUILD_HOST=novm KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_VERSION=1
	make -s tinyconfig >/dev/null
	scripts/kconfig/merge_config.sh -m .config "$here/config.fragment" >/dev/null
	make -s olddefconfig
	# Every option in the fragment must have survived olddefconfig.
	missing=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qx "$line" .config || { echo "config: $line did not take" >&2; missing=1; } ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; ! grep -q "^$opt=" .config || { echo "config: $opt still set" >&2; missing=1; } ;;
		esac
	done < "$here/config.fragment"
	[ "$missing" = 0 ] || exit 1
	make -s -j"$(nproc)" vmlinux
	mkdir -p "$cache.tmp"
	cp vmlinux "$cache.tmp/vmlinux"
	cp .config "$cache.tmp/config"
	rm -rf "$cache"
	mv "$cache.tmp" "$cache"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/vmlinux" "$out"
echo "guest kernel: $out (cache $cache)" >&2
