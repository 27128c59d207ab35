#!/usr/bin/env bash
# bench/ab_latency.sh N BIN_A BIN_B [-- BENCH_ARGS...] : runs
# `BIN bench latency BENCH_ARGS` for BIN_A and BIN_B alternately, N times
# each, and prints each run's checkpoint-sample line (p50 .. max, open
# p50/p99/max) and the median p90 and p99 of each binary.  Default args:
# the issue 6 checkpoint case below.  Build the two commits into two build
# directories (or copy two apps/weir) and pass them.
#
#   bash bench/ab_latency.sh 5 before/apps/weir build/apps/weir
set -euo pipefail
n=$1 a=$2 b=$3
shift 3
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--rate 3000000 --duration 6 --cores 2
	--checkpoint-interval 1000 --no-floor)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for _ in $(seq "$n"); do
	for v in A B; do
		bin=$a; [ $v = B ] && bin=$b
		line=$("$bin" bench latency "${args[@]}" --out "$dir/out" 2>&1 |
		       grep -E '^(ckpt|checkpoints) ' | tr '\n' ' ')
		echo "$v $line" | tee -a "$dir/runs"
	done
done
for v in A B; do
	for q in p90 p99; do
		med=$(awk -v v=$v '$1 == v' "$dir/runs" |
		      grep -o " $q=[0-9.]*" | cut -d= -f2 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
		echo "$v median ckpt $q ${med}us"
	done
done
