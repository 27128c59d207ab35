#!/usr/bin/env bash
# flows_bench.sh [BUILD_DIR] [PACKETS] — the whole `weir flows` job (parse,
# key_by, tumbling per-flow window, CSV sink) in Mpps, from memory (the
# generator) and from a generated pcap file (mapped, or through a pipe), on
# 1 and 2 cores; and, in the
# same run, pmacctd (pcap_savefile, aggregate on the 5-tuple, print plugin)
# and softflowd (-r) on the same file when installed.  One JSON object per
# measurement on stdout; medians of RUNS runs (default 3).
#
# Mpps = packets / wall time of the process (setup and output included),
# so it is a lower bound on the data path.  Peers are single-threaded:
# their Mpps is per core.
set -euo pipefail
B=${1:-build}
N=${2:-5000000}
RUNS=${RUNS:-3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
W=$B/apps/weir
"$B/bench/flows_capture" "$T/cap.pcap" "$N" 100000 1

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { # wall seconds of a command
	local t0 t1
	t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
weir_mpps() { # cores args...
	local c=$1; shift
	for _ in $(seq "$RUNS"); do
		"$W" flows "$@" --cores "$c" --out "$T/o.csv" 2>&1 >/dev/null |
			tail -1 | sed 's/.*mpps=\([0-9.]*\).*/\1/'
	done | median
}
# The capture through a pipe (`cat | weir flows --pcap -`): read as a
# stream by core 0 (docs/net.md, "Streams"); cat takes CPU time too.
weir_pipe_mpps() { # cores
	for _ in $(seq "$RUNS"); do
		cat "$T/cap.pcap" | "$W" flows --pcap - --cores "$1" \
			--out "$T/o.csv" 2>&1 >/dev/null |
			tail -1 | sed 's/.*mpps=\([0-9.]*\).*/\1/'
	done | median
}
# The same bytes written in 4 KiB pieces (as tcpdump's stdio does): the
# page cache holds them in 4 KiB folios, and the mapping takes a fault per
# 64 KiB instead of one per large folio (flows_capture writes 4 MiB).
dd if="$T/cap.pcap" of="$T/cap4k.pcap" bs=4k status=none
declare -A R
for c in 1 2; do
	R[gen$c]=$(weir_mpps "$c" --gen --packets "$N" --flows 100000 --seed 1)
	R[pcap$c]=$(weir_mpps "$c" --pcap "$T/cap.pcap")
	R[pcap4k$c]=$(weir_mpps "$c" --pcap "$T/cap4k.pcap")
	R[pipe$c]=$(weir_pipe_mpps "$c")
	for k in gen pcap pcap4k pipe; do
		echo "{\"bench\":\"flows\",\"engine\":\"weir\",\"input\":\"$k\",\"cores\":$c,\"packets\":$N,\"mpps\":${R[$k$c]},\"mpps_per_core\":$(awk "BEGIN {printf \"%.3f\", ${R[$k$c]} / $c}")}"
	done
done
peer() { # name cmd...
	local name=$1 s; shift
	s=$(for _ in $(seq "$RUNS"); do wall "$@"; done | median)
	local m; m=$(awk "BEGIN {printf \"%.3f\", $N / $s / 1e6}")
	echo "{\"bench\":\"flows\",\"engine\":\"$name\",\"input\":\"pcap\",\"cores\":1,\"packets\":$N,\"mpps\":$m,\"weir_pcap_1core_ratio\":$(awk "BEGIN {printf \"%.3f\", ${R[pcap1]} / $m}")}"
}
if command -v pmacctd >/dev/null; then
	cat > "$T/pmacct.conf" <<CONF
daemonize: false
pcap_savefile: $T/cap.pcap
aggregate: src_host, dst_host, src_port, dst_port, proto
plugins: print
print_output: csv
print_output_file: $T/pmacct.csv
print_output_file_append: true
print_refresh_time: 3600
plugin_pipe_size: 268435456
plugin_buffer_size: 262144
CONF
	# With pmacct's default 4 MB pipe to the print plugin, a savefile is
	# read faster than the plugin takes it and most packets are dropped
	# (5 M packets: 28 rows, 4 s): the 256 MB pipe loses none, checked.
	peer pmacctd pmacctd -f "$T/pmacct.conf"
	got=$(awk -F, 'NR > 1 {s += $6} END {print s + 0}' "$T/pmacct.csv")
	[ "$got" = "$((N * RUNS))" ] || echo "flows_bench: pmacctd counted $got of $((N * RUNS)) packets ($RUNS runs): its figure is not comparable" >&2
	rm -f "$T/pmacct.csv"
else
	echo '{"bench":"flows","engine":"pmacctd","skipped":"not installed"}'
fi
if command -v softflowd >/dev/null; then
	peer softflowd softflowd -r "$T/cap.pcap" -n 127.0.0.1:9 -v 9 -d
	got=$(softflowd -r "$T/cap.pcap" -n 127.0.0.1:9 -v 9 -d 2>&1 |
		awk '/^Packets processed:/ {print $3}')
	[ "$got" = "$N" ] || echo "flows_bench: softflowd processed $got of $N packets" >&2
else
	echo '{"bench":"flows","engine":"softflowd","skipped":"not installed"}'
fi
