#!/bin/sh
# tests/fuzz/run.sh — build the fuzz targets with clang's libFuzzer and
# run each for a bounded time: parse_fuzz (the frame parser and capture
# reader) for `seconds`, then ckpt_fuzz (a checkpoint's manifest and
# changelog chunks, past their checksums) for half of it.
#
#   tests/fuzz/run.sh [seconds] [extra libFuzzer args...]
#
# Defaults: 60 s (FUZZ_SECONDS), work dir $FUZZ_DIR or a fresh temp dir.
# Seeds are generated at run time by gen_seeds and gen_ckpt_seeds (our own
# writers); nothing from the shared corpus is copied.  Needs clang and libclang-rt-*-dev
# (apt-get install -y libclang-rt-14-dev).  Crashes land in $FUZZ_DIR.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
work=${FUZZ_DIR:-$(mktemp -d /tmp/weir_fuzz.XXXXXX)}
cc=${CLANG:-clang}
mkdir -p "$work/seeds" "$work/corpus" "$work/ckpt_seeds" "$work/ckpt_corpus"
srcs="$root/net/parse.c $root/net/pcap.c $root/net/pcap_write.c $root/core/error.c"
flags="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$root/include -I$root"
$cc $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    $srcs "$here/parse_fuzz.c" -o "$work/parse_fuzz" -luring
$cc $flags $srcs "$here/gen_seeds.c" -o "$work/gen_seeds" -luring
"$work/gen_seeds" "$work/seeds"
ckpt_srcs="$root/snapshot/manifest.c $root/state/arena.c $root/state/arena_log.c $root/core/error.c"
ckpt_flags="-DXXH_INLINE_ALL"	# as meson.build builds them
$cc $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    $ckpt_flags $ckpt_srcs "$here/ckpt_fuzz.c" -o "$work/ckpt_fuzz"
$cc $flags $ckpt_flags "$here/gen_ckpt_seeds.c" -o "$work/gen_ckpt_seeds"
"$work/gen_ckpt_seeds" "$work/ckpt_seeds"
echo "fuzz: work dir $work, $secs s + $((secs / 2 + 1)) s" >&2
cd "$work"
./parse_fuzz -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
    "$@" corpus seeds
exec ./ckpt_fuzz -max_total_time="$((secs / 2 + 1))" -max_len=4096 \
    -print_final_stats=1 "$@" ckpt_corpus ckpt_seeds
