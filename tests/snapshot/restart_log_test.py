#!/usr/bin/env python3
"""restart_log_test.py WEIR — after a restart, the changelog continues the
restored checkpoint's chain instead of writing the whole state again.  TAP.

TEST PLAN
  continue    a checkpointing `weir flows` run (generator, paced, 2 cores
              and 1 core, checkpoints every 60 ms) is SIGKILLed once its
              directory holds 3 committed checkpoints and its newest one,
              N, leaves room for a log (fewer than 32 logs per core, their
              bytes at most the page files'; else the run is resumed and
              killed again, up to 6 times).  The same command is run again
              and killed once it committed a checkpoint after N.  Then:
                - the run restored N (its stderr);
                - checkpoint N+1 is a changelog checkpoint on top of N: on
                  every core its page files are N's and its logs are N's
                  plus one new file (before, every run's first checkpoint
                  was a full one: the whole state written again);
                - `weir checkpoint verify DIR N+1` exits 0.
              The command is then run to the end: rows equal an
              uninterrupted run's, packets= the input's count, and the
              newest checkpoint verifies.
  epochs      (the same runs) no checkpoint failed: after a restart a page
              checkpoint is full until one commits on every core (a log
              continuing the old run's chain keeps that run's epochs,
              which page-incremental checkpoints cannot use).

ENVIRONMENT  WEIR_KEEP_TMP=1 keeps the temporary directory.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snaplib as S  # noqa: E402

WEIR = sys.argv[1]
PACKETS = 3000000


def job(cores):
    # Paced to 2 s of input: many 60 ms checkpoints commit before the end.
    return ["--gen", "--packets", str(PACKETS), "--flows", "20000",
            "--seed", "7", "--cores", str(cores), "--rate",
            str(PACKETS // 2)]


def size(d, names):
    return sum(os.path.getsize(os.path.join(d, n)) for n in names)


def room_for_a_log(d, m):
    """Would the planner put a log on top of checkpoint m (log_max 32,
    log_max_pct 100, the defaults)?"""
    for files in m["files"].values():
        if len(files["logs"]) >= 31:
            return False
        if size(d, files["logs"]) > size(d, files["pages"]):
            return False
    return True


def run_killed_past(cmd, errfile, d, above, count=1):
    """Runs cmd, SIGKILLed once d holds a committed checkpoint id above
    `above` and at least `count` of them (ids, not counts of manifests:
    retention deletes old ones)."""
    def when(el, new):
        ids = S.committed_files(d)
        return True if ids and ids[-1] > above and len(ids) >= count \
            else 0.002
    return S.run_until(cmd, errfile, when)


def kill_with_room(cmd, d, out):
    """Kills runs of cmd until the newest checkpoint has room for a log;
    returns its id (None if the input ended first every time)."""
    above, count = 0, 3
    for _ in range(6):
        r = run_killed_past(cmd, out + ".err", d, above, count)
        if not r.killed:
            return None
        ids = S.ckpt_list(WEIR, d)
        if room_for_a_log(d, S.manifest(d, ids[-1])):
            return ids[-1]
        above, count = ids[-1], 1
    return None


def continue_trial(tmp, cores, ref):
    d = os.path.join(tmp, f"ck-{cores}")
    out = os.path.join(tmp, f"out-{cores}.csv")
    cmd = S.flows_cmd(WEIR, job(cores), out, d, 60)
    n = kill_with_room(cmd, d, out)
    if n is None:
        return "SKIP the input ended before a checkpoint with room for a log"
    r = run_killed_past(cmd, out + ".err", d, n)
    assert r.killed, f"the resumed run ended first:\n{S.tail(r.stderr)}"
    assert S.restoring_line(r.stderr)[0] == n, \
        f"the resumed run did not restore {n}:\n{S.tail(r.stderr)}"
    assert "failed" not in r.stderr, \
        f"a checkpoint failed after the restore:\n{S.tail(r.stderr)}"
    old, new = S.manifest(d, n), S.manifest(d, n + 1)
    for c, files in new["files"].items():
        was = old["files"][c]
        assert files["pages"] == was["pages"], \
            f"core {c}: checkpoint {n + 1} wrote page files " \
            f"{files['pages']} (N={n} had {was['pages']}): not a log on N"
        assert files["logs"][1:] == was["logs"] and \
            len(files["logs"]) == len(was["logs"]) + 1, \
            f"core {c}: logs {files['logs']} are not N's {was['logs']} " \
            f"plus one"
    rc, text = S.ckpt_verify(WEIR, d, n + 1)
    assert rc == 0, f"checkpoint {n + 1} does not verify:\n{S.tail(text)}"

    r = S.run(cmd, out + ".err")
    s = r.expect_ok()
    assert "failed" not in r.stderr, \
        f"a checkpoint failed in the last run:\n{S.tail(r.stderr)}"
    assert int(s["packets"]) == PACKETS, f"packets={s['packets']}"
    S.same_rows(out, ref)
    rc, text = S.ckpt_verify(WEIR, d)
    assert rc == 0, f"the newest checkpoint does not verify:\n{S.tail(text)}"
    return f"N={n}, N+1 a log on N on every core, rows exact"


def main():
    tap = S.Tap()
    with S.scratch("weir-restart-", tap) as tmp:
        ref = os.path.join(tmp, "ref.csv")
        S.run(S.flows_cmd(WEIR, job(2), ref), ref + ".err").expect_ok()
        ref = S.rows(ref)
        for cores in (2, 1):
            tap.point(f"restart continues the changelog, {cores} core(s)",
                      lambda c=cores: continue_trial(tmp, c, ref))
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
