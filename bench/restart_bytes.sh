#!/bin/bash
# usage: bash bench/restart_bytes.sh WEIR DIR
# The first checkpoint of a resumed `weir flows` run: kills a checkpointing
# run once 3 checkpoints committed, starts it again, kills it at its first
# checkpoint, and lists the last three (id, kind, bytes written).
W=$1; D=$2; rm -rf $D /tmp/rb.csv*
J="--gen --packets 40000000 --flows 2000000 --rate 4000000 --cores 2 --window 10000 --checkpoint-dir $D --checkpoint-interval 1000 --changelog on --out /tmp/rb.csv"
$W flows $J 2>/dev/null & P=$!
while [ $(ls $D 2>/dev/null | grep -c '^MANIFEST-[0-9]*$') -lt 3 ]; do
	kill -0 $P 2>/dev/null || { echo "restart_bytes: the job ended before 3 checkpoints" >&2; exit 1; }
	sleep 0.02
done
kill -9 $P; wait $P 2>/dev/null
N=$($W checkpoint list $D | tail -1 | awk '{print $1}')
$W flows $J 2>/dev/null & P=$!
while ! [ -e $D/MANIFEST-$(printf %020d $((N+1))) ]; do
	kill -0 $P 2>/dev/null || { echo "restart_bytes: the resumed job ended before a checkpoint" >&2; exit 1; }
	sleep 0.02
done
kill -9 $P; wait $P 2>/dev/null
$W checkpoint list $D | awk -v n=$N '$1>=n-1 {print}'
