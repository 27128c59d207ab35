#!/usr/bin/env python3
"""check_examples.py RUNNING_SUM STATEFUL_SINK — run both examples and check
their output against a model of their input (the generators are pure
functions of the record index, so the model recomputes them).

running_sum: per key, the emitted sums sorted ascending differ by exactly the
key's values (as a multiset), on 1 and on 2 cores; the final sums agree.
stateful_sink: per key, the row with the largest count has count = number of
records of that key and sum = the sum of their amounts.
Prints TAP.
"""
import collections
import os
import subprocess
import sys
import tempfile

M = (1 << 64) - 1


def mix(x):
    x ^= x >> 33
    x = (x * 0xff51afd7ed558ccd) & M
    x ^= x >> 33
    return x


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}: {r.stderr.strip()}")


def read_rows(path, header):
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == header, f"header {lines[0]!r}"
    return [tuple(int(v) for v in line.split(",")) for line in lines[1:]]


def check_running_sum(exe, tmp, cores):
    records, keys, seed = 20000, 50, 42
    out = os.path.join(tmp, f"rs{cores}.csv")
    run([exe, str(records), str(keys), str(cores), out])
    values = collections.defaultdict(list)
    for i in range(records):
        values[mix(i ^ seed) % keys].append(1 + mix((i + seed) & M) % 100)
    sums = collections.defaultdict(list)
    for k, s in read_rows(out, "key,sum"):
        sums[k].append(s)
    assert sorted(sums) == sorted(values), "keys differ"
    for k, got in sums.items():
        got.sort()
        diffs = [got[0]] + [b - a for a, b in zip(got, got[1:])]
        assert sorted(diffs) == sorted(values[k]), f"key {k}: sums do not step by its values"
    return {k: max(v) for k, v in sums.items()}


def check_stateful_sink(exe, tmp):
    records, keys, seed = 5000, 7, 1
    out = os.path.join(tmp, "ss.csv")
    run([exe, "--rate", "0", "--records", str(records), "--keys", str(keys), "--out", out])
    model = collections.defaultdict(lambda: [0, 0])
    for i in range(records):
        k = ((i * 0x9e3779b97f4a7c15) & M ^ seed) % keys
        model[k][0] += 1
        model[k][1] += i % 10
    best = {}
    for k, count, s in read_rows(out, "key,count,sum"):
        if k not in best or count > best[k][0]:
            best[k] = [count, s]
    assert best == dict(model), f"totals {best} != model {dict(model)}"


def main():
    rs, ss = sys.argv[1], sys.argv[2]
    tests = []
    with tempfile.TemporaryDirectory() as tmp:
        finals = {}

        def rs_cores(c):
            finals[c] = check_running_sum(rs, tmp, c)
        tests.append(("running_sum on 1 core matches the model", lambda: rs_cores(1)))
        tests.append(("running_sum on 2 cores matches the model", lambda: rs_cores(2)))
        tests.append(("running_sum final sums equal on 1 and 2 cores",
                      lambda: None if finals.get(1) == finals.get(2) else (_ for _ in ()).throw(AssertionError("differ"))))
        tests.append(("stateful_sink totals match the model", lambda: check_stateful_sink(ss, tmp)))
        print(f"1..{len(tests)}")
        failed = 0
        for n, (name, fn) in enumerate(tests, 1):
            try:
                fn()
                print(f"ok {n} - {name}")
            except Exception as e:  # noqa: BLE001 - report any failure as TAP
                failed += 1
                print(f"not ok {n} - {name}\n# {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
