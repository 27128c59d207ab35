#!/usr/bin/env bash
# bench/ab_ckpt.sh N "CMD_A" "CMD_B" -- ARGS... : run CMD_A ARGS and
# CMD_B ARGS (each a ckpt_bench command line, e.g. the same binary with and
# without an option) N times each, alternating, the order reversed every
# other round, and print each run's ratio metrics (`*_vs_*`) on one line.
# For A/B figures of a checkpoint or restore change on this noisy machine:
# only ratios measured in alternating runs mean anything.
#
#   bash bench/ab_ckpt.sh 4 "build/bench/ckpt_bench" \
#       "build/bench/ckpt_bench --no-restore-helper" -- \
#       --sizes 1G --changelog --phases restore --reps 3 --no-fio --dir DIR
set -euo pipefail
n=$1 a=$2 b=$3
shift 3
[ "${1:-}" = "--" ] && shift
for i in $(seq "$n"); do
	order="A B"
	[ $((i % 2)) = 0 ] && order="B A"
	for v in $order; do
		cmd=$a; [ "$v" = B ] && cmd=$b
		# shellcheck disable=SC2086  # cmd is a command line
		r=$($cmd "$@" 2>&1 | grep -E '"metric":"[a-z_]*_vs_[a-z_]*"' |
		    sed 's/.*"metric":"\([a-z_]*\)","value":\([0-9.e+-]*\).*/\1=\2/' |
		    tr '\n' ' ')
		echo "$i $v $r"
	done
done
