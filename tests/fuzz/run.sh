#!/bin/sh
# tests/fuzz/run.sh — build the parser/reader fuzz target with clang's
# libFuzzer and run it for a bounded time.
#
#   tests/fuzz/run.sh [seconds] [extra libFuzzer args...]
#
# Defaults: 60 s (FUZZ_SECONDS), work dir $FUZZ_DIR or a fresh temp dir.
# Seeds are generated at run time by gen_seeds (our own writer); nothing
# from the shared corpus is copied.  Needs clang and libclang-rt-*-dev
# (apt-get install -y libclang-rt-14-dev).  Crashes land in $FUZZ_DIR.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
work=${FUZZ_DIR:-$(mktemp -d /tmp/weir_fuzz.XXXXXX)}
cc=${CLANG:-clang}
mkdir -p "$work/seeds" "$work/corpus"
srcs="$root/net/parse.c $root/net/pcap.c $root/net/pcap_write.c $root/core/error.c"
flags="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$root/include -I$root"
$cc $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    $srcs "$here/parse_fuzz.c" -o "$work/parse_fuzz"
$cc $flags $srcs "$here/gen_seeds.c" -o "$work/gen_seeds"
"$work/gen_seeds" "$work/seeds"
echo "fuzz: work dir $work, $secs s" >&2
cd "$work"
exec ./parse_fuzz -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
    "$@" corpus seeds
