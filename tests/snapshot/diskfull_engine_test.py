#!/usr/bin/env python3
"""diskfull_engine_test.py WEIR [FLOWS_CAPTURE] — `weir flows` checkpointing
to a file system that fills up part way, then gets room again.  TAP.

TEST PLAN
  A tmpfs (size=256m) is mounted on a temporary directory (root needed: the
  test is skipped visibly with the mount error otherwise) and a filler file
  leaves FREE_MB (16 MiB) free.  The job keeps every flow of the run in one
  window (--window 600000, 100000 flows), so its state, and its checkpoints,
  grow as it runs: the first ones fit, later ones do not.  Phases 1 and 2
  run with --changelog off, so every checkpoint writes pages and grows with
  the state (changelog checkpoints write only the updates, and fit); phase
  3 runs with the changelog on, and its filler leaves less room than one
  changelog checkpoint needs.
  phase 1 (disk full part way), the run must:
    - exit 0 with status=ok and packets= the input's count;
    - have committed at least one checkpoint and failed at least one
      (checkpoints>=1, checkpoint_failures>=1), and log each failure on
      stderr ("weir: checkpoint N failed ... No space left on device"):
      as many failed/aborted lines as checkpoint_failures=;
    - write exactly the rows of a run without checkpoints;
    - leave a directory whose newest committed checkpoint passes
      `weir checkpoint verify`, with no file of a failed checkpoint and no
      MANIFEST-*.tmp left (every ckpt-* file is named by a manifest).
  phase 2 (room again): the filler is deleted and the same command run
  again; it resumes from the newest checkpoint (restored_from= that id) and
  must commit checkpoints again without failure (checkpoints>=1,
  checkpoint_failures=0, `weir checkpoint list` shows ids above the old
  newest), verify clean, leave no orphan, and write the same rows.
  phase 3 (transient disk full inside one run, JOB3: 1 s windows, rows
  written all along): once a checkpoint is committed, a filler leaves 1 MiB
  free; once a checkpoint failure is logged, the filler is deleted; once a
  newer checkpoint is committed (the first after a failed one; the TAP line
  says whether it is incremental), the job is SIGKILLed.  The same command
  must then restore that newest checkpoint and finish with exit 0, the
  input's packets= and exactly the rows of a run without checkpoints.
  The tmpfs is unmounted in a finally block (lazily if still busy).

ENVIRONMENT  WEIR_KEEP_TMP=1 keeps the reference directory (not the tmpfs).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snaplib as S  # noqa: E402

WEIR = sys.argv[1]
TMPFS_MB, FREE_MB = 256, 16
PACKETS = 300000
# Paced (1.5 s of input), so the run takes many 50 ms checkpoints on a
# fast quiet machine as on a loaded one: unpaced, a quiet machine finished
# the input after the first commit and no checkpoint ever hit the full disk.
JOB = ["--gen", "--packets", str(PACKETS), "--flows", "100000",
       "--window", "600000", "--seed", "3", "--cores", "2",
       "--rate", "200000", "--changelog", "off"]
# phase 3: rows written all along (1 s windows), several seconds of input.
PACKETS3 = 1500000
JOB3 = ["--gen", "--packets", str(PACKETS3), "--flows", "20000", "--seed", "5",
        "--cores", "2", "--rate", "600000"]
FAIL_RE = re.compile(r"^weir: checkpoint \d+ (failed|aborted)", re.M)


def mount(mnt):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size={TMPFS_MB}m,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else \
        (r.stderr.strip() or f"mount exit {r.returncode}")


def umount(mnt):
    if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def wait_for(p, cond, what, limit=120):
    """Poll cond() while p runs; its value once true.  Fails if p ends
    first (the input is then too small for this machine)."""
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v
        assert p.poll() is None, \
            f"the job ended (exit {p.returncode}) before {what}; input too small"
        assert time.monotonic() - t0 < limit, f"no {what} after {limit} s"
        time.sleep(0.002)



def fill(path, mb):
    chunk = b"\xa5" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def main():
    tap = S.Tap()
    with S.scratch("weir-diskfull-", tap) as tmp:
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        names = ["phase 1: checkpoints outgrow the tmpfs, job still ok and exact",
                 "phase 2: room again (filler deleted), checkpoints commit again",
                 "phase 3: disk full then freed inside one run, killed after the "
                 "next commit, resumed exactly"]
        mounted = False
        st = {}
        try:
            err = mount(mnt)
            if err:
                for n in names:
                    tap.skip(n, f"cannot mount a tmpfs ({err}); needs root")
                return tap.finish()
            mounted = True
            d = os.path.join(mnt, "ck")
            out = os.path.join(tmp, "out.csv")
            cmd = S.flows_cmd(WEIR, JOB, out, d, 50)

            def phase1():
                ref_out = os.path.join(tmp, "ref.csv")
                S.run(S.flows_cmd(WEIR, JOB, ref_out), ref_out + ".err").expect_ok()
                st["ref"] = S.rows(ref_out)
                vfs = os.statvfs(mnt)
                free_mb = vfs.f_bavail * vfs.f_frsize >> 20
                fill(os.path.join(mnt, "filler"), free_mb - FREE_MB)
                r = S.run(cmd, out + ".err")
                s = r.expect_ok()
                ok, failed = int(s["checkpoints"]), int(s["checkpoint_failures"])
                assert failed >= 1, \
                    f"no checkpoint failed with {FREE_MB} MiB free " \
                    f"(checkpoints={ok}): the test did not fill the disk"
                assert ok >= 1, \
                    f"no checkpoint committed before the disk filled " \
                    f"(checkpoint_failures={failed})"
                assert "No space left on device" in r.stderr, \
                    f"no ENOSPC reported on stderr:\n{S.tail(r.stderr)}"
                logged = len(FAIL_RE.findall(r.stderr))
                assert logged == failed, \
                    f"checkpoint_failures={failed} but {logged} 'weir: checkpoint " \
                    f"N failed|aborted' lines on stderr:\n{S.tail(r.stderr)}"
                assert int(s["packets"]) == PACKETS, f"packets={s['packets']}"
                assert not os.path.exists(out + ".inprogress")
                S.same_rows(out, st["ref"])
                ids = S.ckpt_list(WEIR, d)
                assert ids, "`weir checkpoint list` shows no checkpoint"
                rc, text = S.ckpt_verify(WEIR, d)
                assert rc == 0, f"newest checkpoint {ids[-1]} does not verify " \
                                f"after the disk filled:\n{S.tail(text)}"
                left = S.orphans(d)
                assert not left, f"files of failed checkpoints left: {left}"
                st["ids"] = ids
                return f"checkpoints={ok} checkpoint_failures={failed}, ids {ids}"

            def phase2():
                assert "ids" in st, "phase 1 did not finish"
                old = st["ids"][-1]
                os.unlink(os.path.join(mnt, "filler"))
                r = S.run(cmd, out + ".err")
                s = r.expect_ok()
                assert int(s["restored_from"]) == old, \
                    f"restored_from={s['restored_from']}, newest was {old}"
                ok, failed = int(s["checkpoints"]), int(s["checkpoint_failures"])
                assert ok >= 1 and failed == 0, \
                    f"with room again: checkpoints={ok} checkpoint_failures=" \
                    f"{failed}:\n{S.tail(r.stderr)}"
                ids = S.ckpt_list(WEIR, d)
                assert ids and ids[-1] > old, \
                    f"`weir checkpoint list` shows {ids}, nothing newer than {old}"
                rc, text = S.ckpt_verify(WEIR, d)
                assert rc == 0, f"newest checkpoint does not verify:\n{S.tail(text)}"
                left = S.orphans(d)
                assert not left, f"orphan checkpoint files: {left}"
                assert int(s["packets"]) == PACKETS, f"packets={s['packets']}"
                assert not os.path.exists(out + ".inprogress")
                S.same_rows(out, st["ref"])
                return f"restored {old}, checkpoints={ok}, ids now {ids}"

            def phase3():
                # A transient disk full inside one run: fill the tmpfs once a
                # checkpoint is committed, wait for a failure, free the space,
                # wait for a newer commit (the first after a failed one), then
                # SIGKILL and resume: the rows must still be exact.
                shutil.rmtree(d, ignore_errors=True)  # phase 2's directory
                d3 = os.path.join(mnt, "ck3")
                out3 = os.path.join(tmp, "out3.csv")
                ref3 = os.path.join(tmp, "ref3.csv")
                S.run(S.flows_cmd(WEIR, JOB3, ref3), ref3 + ".err").expect_ok()
                cmd3 = S.flows_cmd(WEIR, JOB3, out3, d3, 50)
                filler = os.path.join(mnt, "filler3")
                err3 = out3 + ".err"
                steps = []
                with open(err3, "w") as ef:
                    p = subprocess.Popen(cmd3, stdout=subprocess.DEVNULL, stderr=ef)
                    try:
                        ids0 = wait_for(p, lambda: S.committed_files(d3), "a commit")
                        S.fill_up(filler, 1 << 20)
                        steps.append(f"filled after ckpt {ids0[-1]}")
                        wait_for(p, lambda: FAIL_RE.search(open(err3).read()),
                                 "a checkpoint failure")
                        full = S.committed_files(d3)
                        os.unlink(filler)
                        steps.append(f"failed, freed at ckpt {full[-1]}")
                        ids = wait_for(p, lambda: [i for i in
                                                   S.committed_files(d3)
                                                   if i > full[-1]],
                                       "a commit after the space was freed")
                        p.send_signal(signal.SIGKILL)
                    finally:
                        if p.poll() is None:
                            p.kill()
                        p.wait()
                if os.path.exists(filler):
                    os.unlink(filler)
                text = open(err3).read()
                assert "No space left on device" in text, \
                    f"no ENOSPC reported on stderr:\n{S.tail(text)}"
                listed = S.ckpt_list(WEIR, d3)
                newest = listed[-1]
                par = S.manifest(d3, newest).get("parent", 0)
                steps.append(f"killed at ckpt {newest} (parent {par})")
                r = S.run(cmd3, err3)
                s = r.expect_ok()
                assert int(s["restored_from"]) == newest, \
                    f"restored_from={s['restored_from']}, newest committed " \
                    f"{newest}:\n{S.tail(r.stderr)}"
                assert int(s["packets"]) == PACKETS3, f"packets={s['packets']}"
                assert not os.path.exists(out3 + ".inprogress")
                S.same_rows(out3, S.rows(ref3))
                del ids
                return ", ".join(steps)

            tap.point(names[0], phase1)
            tap.point(names[1], phase2)
            tap.point(names[2], phase3)
        finally:
            if mounted:
                umount(mnt)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
