#!/usr/bin/env python3
"""check_examples.py RUNNING_SUM STATEFUL_SINK — run both examples and check
their output against a model of their input (the generators are pure
functions of the record index, so the model recomputes them).

running_sum: per key, the emitted sums sorted ascending differ by exactly the
key's values (as a multiset), on 1 and on 2 cores; the final sums agree.
stateful_sink: per key, the row with the largest count has count = number of
records of that key and sum = the sum of their amounts; and after a SIGKILL, a
Ctrl-C (SIGINT) and a third run to the end in the same checkpoint directory,
the output holds exactly the rows of an uninterrupted run, each once.
Prints TAP.
"""
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

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
    run([exe, "--rate", "0", "--records", str(records), "--keys", str(keys), "--out", out,
         "--checkpoint-dir", os.path.join(tmp, "ss.ckpt")])
    model = collections.defaultdict(lambda: [0, 0])
    for _, (k, count, s) in stateful_model(records, keys, seed):
        model[k] = [count, s]
    best = {}
    for k, count, s in read_rows(out, "key,count,sum"):
        if k not in best or count > best[k][0]:
            best[k] = [count, s]
    assert best == dict(model), f"totals {best} != model {dict(model)}"


def stateful_model(records, keys, seed):
    """Yield (i, (key, count, sum)) for every record, as the sink emits them."""
    totals = collections.defaultdict(lambda: [0, 0])
    for i in range(records):
        k = ((i * 0x9e3779b97f4a7c15) & M ^ seed) % keys
        totals[k][0] += 1
        totals[k][1] += i % 10
        yield i, (k, totals[k][0], totals[k][1])


def interrupt_after(cmd, seconds, sig):
    """Start cmd, send sig after `seconds`; True if it was still running."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        return True


def check_stateful_resume(exe, tmp):
    records, keys, seed, rate = 400000, 13, 1, 100000
    out, ck = os.path.join(tmp, "resume.csv"), os.path.join(tmp, "resume.ckpt")
    cmd = [exe, "--rate", str(rate), "--records", str(records), "--keys", str(keys),
           "--out", out, "--checkpoint-dir", ck]
    rnd = random.Random(int(os.environ.get("SEED", "7")))
    killed = interrupt_after(cmd, rnd.uniform(1.3, 2.0), signal.SIGKILL)
    stopped = interrupt_after(cmd, rnd.uniform(1.3, 2.0), signal.SIGINT)
    assert killed, "the first run ended before the SIGKILL: nothing was tested"
    run(cmd)
    assert os.path.isdir(ck) and any(f.startswith("MANIFEST") for f in os.listdir(ck)), \
        "no committed checkpoint in the directory"
    rows = read_rows(out, "key,count,sum")
    amounts = collections.defaultdict(list)
    for i, (k, _, _) in stateful_model(records, keys, seed):
        amounts[k].append(i % 10)
    check_running_rows(rows, amounts, f"Ctrl-C run interrupted: {stopped}")


def check_running_rows(rows, amounts, note):
    """Two cores interleave a key's records in any order, so per key the
    rows must have counts exactly 1..n, once each, and the sums must step
    by the key's amounts (as a multiset)."""
    by_key = collections.defaultdict(list)
    for k, count, s in rows:
        by_key[k].append((count, s))
    assert sorted(by_key) == sorted(amounts), f"keys differ; {note}"
    for k, got in by_key.items():
        got.sort()
        counts = [c for c, _ in got]
        if counts != list(range(1, len(amounts[k]) + 1)):
            lost = len(set(range(1, len(amounts[k]) + 1)) - set(counts))
            raise AssertionError(f"key {k}: {lost} rows lost, {len(counts) - len(set(counts))} duplicated; {note}")
        steps = [got[0][1]] + [b[1] - a[1] for a, b in zip(got, got[1:])]
        assert sorted(steps) == sorted(amounts[k]), f"key {k}: sums do not step by its amounts; {note}"


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
        tests.append(("stateful_sink after SIGKILL and Ctrl-C resumes: every row exactly once",
                      lambda: check_stateful_resume(ss, tmp)))
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
