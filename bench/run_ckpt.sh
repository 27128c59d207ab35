#!/usr/bin/env bash
# bench/run_ckpt.sh — the checkpoint benchmark (bench/ckpt_bench.c) at
# 64 MiB, 1 GiB and 4 GiB of state, then Redis side by side holding the
# same number of keys: BGSAVE fork time (INFO persistence latest_fork_usec)
# and SET throughput (redis-benchmark) while saving vs not.
#
#   bash bench/run_ckpt.sh [ckpt_bench args...]      e.g. --reps 5 --dir D
#
# Environment: BUILD (build dir, default build), SIZES (64M,1G,4G),
# REDIS_PORT (16399, loopback only), REDIS_MAX_KEYS (25000000: Redis needs
# ~80-100 bytes per key plus the fork's copy-on-write, so the 4 GiB case,
# 94 M keys, does not fit this 24 GiB machine next to the engine's),
# REDIS_ONLY=1 (skip ckpt_bench).
# Output: JSON lines on stdout (also in $BUILD/bench/ckpt-results.jsonl).
# Needs root for dropping caches (restore cold); installs fio and
# redis-server with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SIZES=${SIZES:-64M,1G,4G}
PORT=${REDIS_PORT:-16399}
MAXKEYS=${REDIS_MAX_KEYS:-25000000}
OUT=$BUILD/bench/ckpt-results.jsonl

need() {
	command -v "$1" >/dev/null && return 0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need fio fio
need redis-server redis-server

if [ "${REDIS_ONLY:-0}" != 1 ]; then
	"$BUILD/bench/ckpt_bench" --sizes "$SIZES" "$@" | tee "$OUT"
	# Restore as the engine restores a checkpoint of two cores: each
	# core its own half, at once ("cores":2 in the JSON).
	"$BUILD/bench/ckpt_bench" --sizes "$SIZES" "$@" --restore-cores 2 |
		tee -a "$OUT"
fi

RDIR=$(mktemp -d /tmp/weir-redis-XXXXXX)
cli() { redis-cli -p "$PORT" "$@"; }
stop_redis() { cli shutdown nosave >/dev/null 2>&1 || true; rm -rf "$RDIR"; }
trap stop_redis EXIT

# SET requests/s over random keys, pipelined 16 deep, 50 clients.
set_rps() {
	timeout 300 redis-benchmark -p "$PORT" -t set -r "$1" -n "$2" -P 16 -q 2>/dev/null |
		tr '\r' '\n' | awk '/SET:/ {print $2}' | tail -1
}

saving() { cli info persistence | awk -F: '/rdb_bgsave_in_progress/ {print $2+0}'; }

emit() { # case metric value unit
	printf '{"bench":"ckpt","case":"%s","metric":"%s","value":%s,"unit":"%s","impl":"redis"}\n' \
		"$1" "$2" "$3" "$4" | tee -a "$OUT"
}

redis_case() { # size_bytes name
	local keys=$(( $1 / 32 / 10 * 7 )) name=$2 n=2000000
	if [ "$keys" -gt "$MAXKEYS" ]; then
		echo "run_ckpt: redis $name skipped: $keys keys > REDIS_MAX_KEYS" >&2
		return 0
	fi
	# The previous case's BGSAVE left dump.rdb here: a new server would load
	# it at start (the 1G case crashed on it: "Duplicated key found in RDB
	# file" once DEBUG POPULATE added the same key names).
	rm -f "$RDIR/dump.rdb"
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$RDIR" --daemonize yes --enable-debug-command local \
		--logfile "$RDIR/log" >/dev/null
	for _ in $(seq 50); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done
	cli debug populate "$keys" key 8 >/dev/null
	cli ping >/dev/null 2>&1 || {
		echo "run_ckpt: redis $name: the server died (see $RDIR/log)" >&2
		return 1
	}
	emit "$name" keys "$keys" keys
	emit "$name" used_memory "$(cli info memory | awk -F: '/^used_memory:/ {print $2+0}')" bytes
	local idle; idle=$(set_rps "$keys" "$n")
	local t0 t1 r sum=0 runs=0; t0=$(date +%s.%N)
	cli bgsave >/dev/null
	# Short runs back to back while the child saves (at least one).
	while :; do
		r=$(set_rps "$keys" 200000)
		sum=$(echo "$sum + $r" | bc -l); runs=$((runs + 1))
		[ "$(saving)" = 1 ] || break
	done
	while [ "$(saving)" = 1 ]; do sleep 0.05; done
	t1=$(date +%s.%N)
	local saving; saving=$(echo "$sum / $runs" | bc -l)
	emit "$name" fork_us "$(cli info stats | awk -F: '/latest_fork_usec/ {print $2+0}')" us
	emit "$name" bgsave_s "$(echo "$t1 - $t0" | bc -l)" s
	emit "$name" set_rps_no_save "$idle" requests/s
	emit "$name" set_rps_bgsave "$saving" requests/s
	emit "$name" set_bgsave_vs_none "$(echo "$saving / $idle" | bc -l)" ratio
	cli shutdown nosave >/dev/null 2>&1 || true
	for _ in $(seq 100); do cli ping >/dev/null 2>&1 || break; sleep 0.1; done
}

for s in ${SIZES//,/ }; do
	case $s in
	*G) b=$(( ${s%G} << 30 )) ;; *M) b=$(( ${s%M} << 20 )) ;; *) b=$s ;;
	esac
	redis_case "$b" "$(( b >> 20 ))M"
done
