#!/usr/bin/env bash
# run.sh BUILD_DIR — install weir into a temporary prefix, then build and run
# tests/install/embed.c the way an appliance would: pkg-config --cflags --libs.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(dirname "$(find "$tmp/root" -name weir.pc | head -1)")
[ -n "$pc" ] || { echo "weir.pc was not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc/weir.pc")
export PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
for h in common.h ring.h runtime.h; do
	[ -f "$tmp/root$prefix/include/weir/$h" ] || { echo "missing include/weir/$h"; exit 1; }
done
cc -std=gnu11 -Wall -Wextra -Werror -o "$tmp/embed" "$src/embed.c" \
	$(pkg-config --cflags --libs weir)
ldir=$(dirname "$(find "$tmp/root" -name "libweir.so*" | head -1)")
LD_LIBRARY_PATH="$ldir" "$tmp/embed"
echo "ok: built and ran an embedder with pkg-config --cflags --libs weir"
