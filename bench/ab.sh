#!/usr/bin/env bash
# bench/ab.sh N BIN_A BIN_B -- ARGS... : run BIN_A ARGS and BIN_B ARGS
# alternately N times each, pinned to CPU ${AB_CPU:-1} (unset AB_CPU= for
# multi-core runs), and print each one's mpps= (from the summary line)
# with its median.  For before/after figures of a change: build the two
# commits into two build directories and pass their apps/weir.
# One untimed run of each first (AB_WARMUP=0 skips it): on the VMs these
# figures come from, memory the guest has not touched for a while (a
# capture in the page cache, say) costs a host fault per page on its next
# touch, and the first run of a pair paid it (bench/RESULTS.md, "Memory
# left idle is slow to touch again").
#
#   bash bench/ab.sh 5 build-before/apps/weir build/apps/weir -- \
#       flows --pcap cap.pcap --cores 1 --out /tmp/o.csv
set -euo pipefail
n=$1 a=$2 b=$3
shift 3
[ "${1:-}" = "--" ] && shift
pin=()
[ -n "${AB_CPU-1}" ] && pin=(taskset -c "${AB_CPU-1}")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ "${AB_WARMUP:-1}" != 0 ]; then
	"${pin[@]}" "$a" "$@" >/dev/null 2>&1 || true
	"${pin[@]}" "$b" "$@" >/dev/null 2>&1 || true
fi
for _ in $(seq "$n"); do
	for v in A B; do
		bin=$a; [ $v = B ] && bin=$b
		m=$("${pin[@]}" "$bin" "$@" 2>&1 | grep -o 'mpps=[0-9.]*' | cut -d= -f2 || true)
		echo "$v ${m:-0}" >> "$out"
	done
done
for v in A B; do
	vals=$(awk -v v=$v '$1 == v {print $2}' "$out")
	med=$(echo "$vals" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "$v median $med all $(echo $vals)"
done
