#!/bin/bash
# bug1_repro.sh WEIR [RUNS] [CORES] — reproduce BUG-1 (tests/snapshot/README.md):
# an UNINTERRUPTED `weir flows` run with checkpoints writes rows that differ
# from the same run without checkpoints (rows duplicated ~1 MiB apart in the
# file, the rows that belonged there lost, sometimes a torn row / NUL byte).
# The rows are written while checkpoints are taken (every row comes at the
# end of the 2 s of event time); the loss needs the sink's io_uring writes to
# complete late, which CPU load makes likely: run two copies at once, e.g.
#   bash tests/snapshot/bug1_repro.sh build/apps/weir 8 & \
#   bash tests/snapshot/bug1_repro.sh build/apps/weir 8; wait
# Seen: 1 of 12 runs (2 copies in parallel on a 2-core machine), and 2 of 34
# kill-test soak trials.  Exit status 1 when a run differed.
W=${1:?usage: bug1_repro.sh WEIR [RUNS] [CORES]}; N=${2:-8}; C=${3:-2}
T=$(mktemp -d /tmp/weir-bug1-XXXXXX); trap 'rm -rf "$T"' EXIT
J=(--gen --packets 2000000 --flows 100000 --seed 2 --cores "$C")
"$W" flows "${J[@]}" --out "$T/ref.csv" 2>/dev/null || exit 2
sort "$T/ref.csv" > "$T/ref.sorted"
bad=0
for i in $(seq 1 "$N"); do
  rm -rf "$T/ck"
  "$W" flows "${J[@]}" --out "$T/u.csv" --checkpoint-dir "$T/ck" \
       --checkpoint-interval 50 2>"$T/err"
  rc=$?
  sort "$T/u.csv" > "$T/u.sorted"
  if cmp -s "$T/u.sorted" "$T/ref.sorted"; then r=same; else
    bad=$((bad + 1))
    r="DIFFERS: $(comm -23 "$T/u.sorted" "$T/ref.sorted" | wc -l) extra rows,"
    r="$r $(comm -13 "$T/u.sorted" "$T/ref.sorted" | wc -l) missing,"
    r="$r $(tr -cd '\000' < "$T/u.csv" | wc -c) NUL bytes"
  fi
  echo "run $i: exit $rc $(grep -o 'checkpoints=[0-9]*' "$T/err") $r"
done
echo "$bad of $N runs differ"
[ "$bad" = 0 ]
