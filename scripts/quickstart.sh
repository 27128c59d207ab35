#!/usr/bin/env bash
# quickstart.sh — install what is missing, build, and run or test weir.
#
#   bash scripts/quickstart.sh run [weir args...]   main job on its default input
#   bash scripts/quickstart.sh test                 the whole test suite
#
# Idempotent: installs only missing Debian packages, configures the build
# directory once, rebuilds incrementally.  Environment:
#   WEIR_BUILD_DIR   build directory (default: build)
#   WEIR_WERROR=1    treat compiler warnings as errors (CI sets it)
#   WEIR_BUILDTYPE   meson build type (default: release)
#   WEIR_MESON_ARGS  extra `meson setup` arguments (e.g. -Db_sanitize=address)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(meson ninja-build pkg-config gcc python3 libdpdk-dev liburing-dev
          libjemalloc-dev libxxhash-dev libcriterion-dev librocksdb-dev
          tshark libmicrohttpd-dev gnuplot-nox)
BUILD_DIR=${WEIR_BUILD_DIR:-build}

die() { echo "quickstart: $*" >&2; exit 1; }

install_missing() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}): run as root or apt-get install them"
	echo "quickstart: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

build() {
	local args=(--buildtype="${WEIR_BUILDTYPE:-release}")
	[ "${WEIR_WERROR:-0}" = 1 ] && args+=(--werror)
	# shellcheck disable=SC2206
	args+=(${WEIR_MESON_ARGS:-})
	if [ ! -f "$BUILD_DIR/build.ninja" ]; then
		meson setup "$BUILD_DIR" "${args[@]}" >/dev/null || die "meson setup failed"
	fi
	ninja -C "$BUILD_DIR" >/dev/null || { ninja -C "$BUILD_DIR"; die "build failed"; }
}

run_tests() {
	local rc=0
	meson test -C "$BUILD_DIR" --print-errorlogs "$@" || rc=$?
	python3 scripts/test-summary.py "$BUILD_DIR" || rc=1
	return $rc
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)  install_missing; build; exec "$BUILD_DIR/apps/weir" "$@" ;;
test) install_missing; build; run_tests "$@" ;;
*)    echo "usage: bash scripts/quickstart.sh run|test" >&2; exit 2 ;;
esac
