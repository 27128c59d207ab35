#!/bin/sh
# run_ring.sh — run ring_bench N times (default 5) and print a markdown table
# of medians per case: weir vs rte_ring throughput, one-way latency p50/p99,
# and the core-to-core floor each run saw.
#
# usage: bench/run_ring.sh [N] [ring_bench options...]
#   env RING_BENCH=path (default build/bench/ring_bench), OUT=dir to keep the
#   raw JSON lines (default: a temporary directory, removed at the end).
# "ratio" is the median over runs of each run's own ratio (weir and rte_ring
# measured alternately in the same run), not the ratio of the two medians.
set -eu

n=5
case "${1:-}" in
	''|-*) ;;
	*[!0-9]*) echo "run_ring.sh: N must be a number, got '$1'" >&2; exit 2 ;;
	*) n=$1; shift ;;
esac
bin=${RING_BENCH:-build/bench/ring_bench}
if [ ! -x "$bin" ]; then
	echo "run_ring.sh: $bin not found: build first (ninja -C build)" >&2
	exit 2
fi
out=${OUT:-}
tmp=
if [ -z "$out" ]; then
	tmp=$(mktemp -d)
	out=$tmp
	trap 'rm -rf "$tmp"' EXIT
fi
mkdir -p "$out"

echo "run_ring.sh: $n runs of $bin $*; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
i=1
while [ "$i" -le "$n" ]; do
	echo "run_ring.sh: run $i/$n" >&2
	"$bin" "$@" >"$out/run$i.json"
	i=$((i + 1))
done
echo "run_ring.sh: load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$out"/run*.json <<'EOF'
import json, statistics, sys

# (case, metric, impl) -> [value per run]; (case, metric) -> [ratio per run]
vals, ratios, order = {}, {}, []
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            c, m = j["case"], j["metric"]
            if c not in order:
                order.append(c)
            vals.setdefault((c, m, j["impl"]), []).append(j["value"])
            if "ratio" in j:
                ratios.setdefault((c, m), []).append(j["ratio"])

def med(key, d=vals, scale=1.0, fmt="{:.1f}"):
    v = d.get(key)
    return fmt.format(statistics.median(v) * scale) if v else "–"

runs = max((len(v) for v in vals.values()), default=0)
print(f"Medians of {runs} runs. Throughput in M records/s; latency one-way "
      "in ns; ratio = median of per-run ratios (throughput weir/rte_ring, "
      "latency rte_ring/weir: higher is better for weir).\n")
print("| case | c2c ns | weir M/s | rte_ring M/s | ratio | weir p50 | "
      "rte p50 | ratio | weir p99 | rte p99 | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in order:
    row = [c, med((c, "c2c_oneway_p50", "cpu"), fmt="{:.0f}")]
    row += [med((c, "throughput", "weir"), scale=1e-6),
            med((c, "throughput", "rte_ring"), scale=1e-6),
            med((c, "throughput"), d=ratios, fmt="{:.2f}")]
    for m in ("latency_p50", "latency_p99"):
        row += [med((c, m, "weir"), fmt="{:.0f}"),
                med((c, m, "rte_ring"), fmt="{:.0f}"),
                med((c, m), d=ratios, fmt="{:.2f}")]
    print("| " + " | ".join(row) + " |")
EOF
