#!/usr/bin/env python3
"""test-summary.py BUILD_DIR... — count individual tests from meson's logs.

Criterion tests run with TAP output, so one meson test holds many Criterion
tests: count their `ok` / `not ok` lines (SKIP counted apart).  A meson test
without TAP lines counts as one test by its result.  Prints one line
`label: N passed, N failed, N skipped` and exits 1 if anything failed.
"""
import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count(build_dir):
    passed = failed = skipped = 0
    path = f"{build_dir}/meson-logs/testlog.json"
    try:
        f = open(path)
    except OSError:
        print(f"test-summary: no test log in {build_dir} (build failed?)", file=sys.stderr)
        return 0, 1, 0
    with f:
        for line in f:
            t = json.loads(line)
            p = fl = s = 0
            for out in (t.get("stdout") or "").splitlines():
                m = TAP.match(out)
                if not m:
                    continue
                if "# SKIP" in m.group(2):
                    s += 1
                elif m.group(1) == "ok":
                    p += 1
                else:
                    fl += 1
            ok = t["result"] in ("OK", "SKIP", "EXPECTEDFAIL")
            if p + fl + s == 0:
                p, fl, s = (1, 0, 0) if t["result"] == "OK" else (0, 0, 1) if t["result"] == "SKIP" else (0, 1, 0)
            elif not ok and fl == 0:
                fl = 1  # crashed or timed out after its last TAP line
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    return passed, failed, skipped


def main():
    total = [0, 0, 0]
    for d in sys.argv[1:]:
        p, f, s = count(d)
        total = [total[0] + p, total[1] + f, total[2] + s]
    print(f"tests: {total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
