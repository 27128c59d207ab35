#!/usr/bin/env python3
"""corrupt_engine_test.py WEIR [FLOWS_CAPTURE] — corrupt checkpoints seen by
`weir flows` itself (the format-level cases are in ckpt_test.c).  TAP.

TEST PLAN
  flip / truncate / flip-meta  a checkpointing `weir flows` run is
              SIGKILLed once its directory holds at least 3 committed
              checkpoints.  Then, in the newest checkpoint N's own file of one
              core (its changelog file, the first `log` line of that core in
              MANIFEST-N, or when N is a page checkpoint its first `pages`
              file), or its meta file:
                flip      one byte inside a page (or a log chunk) is
                          inverted;
                truncate  the file is cut to half its size (4 KiB aligned);
                flip-meta one bit of the meta file's first section's bytes
                          is inverted;
                flip-version  one bit of that own file's format version
                          (byte 8: 3 -> 7): corrupt, since its manifest says
                          3, not a newer format (BUG-5).
              `weir checkpoint verify DIR` must exit 1 naming the file and
              the offset O.  The same command is run again and must:
                - say on stderr "<file> at offset <O>", O being the start of
                  the damaged page or log chunk (flip), the truncated size
                  (truncate), the damaged section's head (flip-meta: 4096)
                  or 8 (flip-version);
                - restore the previous checkpoint: restored_from = the id
                  before N in `weir checkpoint list`;
                - exit 0, status=ok, packets= the input's count, no
                  .inprogress left, rows equal to an uninterrupted run's;
                - leave a directory whose newest checkpoint verifies (it
                  committed at least one checkpoint after the restore).
  shared      the same kill; then one byte of a page file that every
              retained checkpoint's chain contains (the full checkpoint the
              incremental ones build on) is flipped: no checkpoint verifies,
              so the run must exit non-zero (not silently start over), name
              the file and the damaged page's offset, leave the directory
              byte-for-byte unchanged and write no output file.
  foreign     a directory written by the same job with --window 1000 is
              given to a job with --window 500: exit status non-zero, exactly
              one line on stderr besides the summary, naming the reason
              ("another pipeline ... refused"), no .inprogress output left,
              and every file of the directory byte-for-byte unchanged (names,
              modes, SHA-256 before and after).
  BUG-2       the same for a generator job written at --rate 600000 and
              given to one at --rate 1200000: --rate is the generator's event
              clock, so the rest of the packets would be stamped on another
              clock (rows matching neither run; README.md BUG-2).

ENVIRONMENT  WEIR_CORRUPT_SEED (default random, printed), WEIR_KEEP_TMP=1.
"""
import os
import random
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snaplib as S  # noqa: E402

WEIR = sys.argv[1]
SEED = int(os.environ.get("WEIR_CORRUPT_SEED") or
           int.from_bytes(os.urandom(4), "little"))
PACKETS = 1500000
# Paced to 1 s of input: several 50 ms checkpoints commit before the job
# ends however fast the machine is.
JOB = ["--gen", "--packets", str(PACKETS), "--flows", "20000", "--seed", "4",
       "--cores", "2", "--rate", str(PACKETS)]


def page_file_header(path):
    """(page_size, count) from a page file's header (docs/checkpoint-format.md)."""
    with open(path, "rb") as f:
        h = f.read(96)
    assert h[:8] == b"WEIRPAGE", f"{path}: magic {h[:8]!r}"
    page_size, count = struct.unpack_from("<II", h, 44)
    return page_size, count


def log_chunks(path):
    """[(offset, length)] of a changelog file's chunks: its chunk table at
    trailer_off, count entries of {u32 len, u32 0, u64 xxh3}."""
    with open(path, "rb") as f:
        h = f.read(96)
        assert h[:8] == b"WEIRLOGS", f"{path}: magic {h[:8]!r}"
        count, = struct.unpack_from("<I", h, 48)
        trailer_off, = struct.unpack_from("<Q", h, 72)
        f.seek(trailer_off)
        table = f.read(16 * count)
    out, off = [], 4096
    for k in range(count):
        n, = struct.unpack_from("<I", table, 16 * k)
        out.append((off, n))
        off += n
    return out


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))


def flip_own_file(d, m, core, rng):
    """Flips a byte of checkpoint m's own file on some core: a log chunk of
    its changelog file, or a page of its page file (a core that wrote no
    page is skipped).  (name, offset of the damaged chunk or page, byte)."""
    for c in [core] + [c for c in range(m["cores"]) if c != core]:
        files = m["files"][c]
        if files["logs"]:
            name = files["logs"][0]
            chunk = rng.choice(log_chunks(os.path.join(d, name)))
            off = chunk[0] + rng.randrange(chunk[1])
            flip(os.path.join(d, name), off)
            return name, chunk[0], off
        name = files["pages"][0]
        page_size, count = page_file_header(os.path.join(d, name))
        if count:
            off = 4096 + rng.randrange(count * page_size)
            flip(os.path.join(d, name), off)
            return name, 4096 + (off - 4096) // page_size * page_size, off
    raise AssertionError(f"checkpoint {m['id']} wrote nothing on any core")


def killed_dir(tmp, name, ref_out):
    """Kill a checkpointing run once 3 checkpoints are committed.  Returns
    (dir, out, cmd).  A run that ends first is tried again from scratch,
    up to 3 times: on a loaded machine one fsync can take seconds (seen:
    a 1 s job took 2.5 s and committed 2)."""
    d = os.path.join(tmp, f"ck-{name}")
    out = os.path.join(tmp, f"out-{name}.csv")
    cmd = S.flows_cmd(WEIR, JOB, out, d, 50)
    for _ in range(3):
        shutil.rmtree(d, ignore_errors=True)
        for p in (out, out + ".inprogress"):
            if os.path.exists(p):
                os.unlink(p)
        r = S.run_killed(cmd, out + ".err", 0.0, d, 3)
        if r.killed:
            break
    assert r.killed, ("the job finished before 3 checkpoints were committed "
                      f"({S.committed_files(d)}), 3 times; input too small:"
                      f"\n{S.tail(r.stderr)}")
    ids = S.ckpt_list(WEIR, d)
    assert len(ids) >= 2, f"`weir checkpoint list` shows {ids} after the kill"
    return d, out, cmd, ids


def corrupt_trial(tmp, ref, mode, rng):
    d, out, cmd, ids = killed_dir(tmp, mode, ref)
    newest, prev = ids[-1], ids[-2]
    m = S.manifest(d, newest)
    core = rng.randrange(m["cores"])
    files = m["files"][core]
    name = files["meta"] if mode == "flip-meta" else \
        (files["logs"] or files["pages"])[0]
    path = os.path.join(d, name)
    size = os.path.getsize(path)
    if mode == "flip-version":
        # One bit of the file's format version (4 -> 0): corrupt, not "a
        # newer format" (its manifest says 4).
        with open(path, "r+b") as f:
            f.seek(8)
            b = f.read(1)
            f.seek(8)
            f.write(bytes([b[0] ^ 0x04]))
        want_off = 8
        what = "version bit flipped"
    elif mode == "flip-meta":
        # Inside the first section's bytes (its 48-byte head is at 4096:
        # name[32], u64 len, u64 checksum): reported at the section.
        with open(path, "rb") as f:
            f.seek(4096 + 32)
            slen = struct.unpack("<Q", f.read(8))[0]
        off = 4096 + 48 + rng.randrange(slen)
        flip(path, off)
        want_off = 4096
        what = f"byte {off} flipped"
    elif mode == "flip":
        name, want_off, off = flip_own_file(d, m, core, rng)
        what = f"byte {off} flipped"
    else:
        cut = size // 2 // 4096 * 4096
        os.truncate(path, cut)
        want_off = cut
        what = f"truncated {size} -> {cut}"
    rc, text = S.ckpt_verify(WEIR, d)
    assert rc == 1 and f"{name}: offset {want_off}:" in text, \
        f"`weir checkpoint verify` after the damage: exit {rc}, want 1 " \
        f"naming {name} at offset {want_off}:\n{S.tail(text)}"

    r = S.run(cmd, out + ".err")
    s = r.expect_ok()
    needle = f"{name} at offset {want_off}"
    assert needle in r.stderr, \
        f"stderr does not name the damage ('{needle}'):\n{S.tail(r.stderr)}"
    got = int(s["restored_from"])
    assert got == prev, \
        f"restored_from={got}; newest {newest} is corrupt, so the previous " \
        f"one, {prev}, must be restored:\n{S.tail(r.stderr)}"
    assert int(s["packets"]) == PACKETS, f"packets={s['packets']}, want {PACKETS}"
    assert not os.path.exists(out + ".inprogress"), f"{out}.inprogress left"
    S.same_rows(out, ref)
    assert int(s["checkpoints"]) >= 1, \
        f"no checkpoint committed after the restore (checkpoints=" \
        f"{s['checkpoints']}); cannot check the directory's health"
    rc, text = S.ckpt_verify(WEIR, d)
    assert rc == 0, \
        f"after the recovery the newest checkpoint does not verify " \
        f"(exit {rc}):\n{S.tail(text)}"
    return (f"ckpts {ids}, {name} {what}, reported at offset {want_off}, "
            f"restored {got}")


def shared_parent(tmp, rng):
    """Damage a page file every retained checkpoint's chain contains: none
    verifies, so the job must refuse to start (not silently start over),
    report the damage, and leave the directory as it was."""
    d, out, cmd, ids = killed_dir(tmp, "shared", None)
    core = rng.randrange(S.manifest(d, ids[-1])["cores"])
    chains = [set(S.manifest(d, i)["files"][core]["pages"]) for i in ids]
    common = sorted(set.intersection(*chains))
    if not common:
        return "SKIP no page file shared by every retained checkpoint " \
               f"{ids} (a full checkpoint among them)"
    name = common[0]
    path = os.path.join(d, name)
    page_size, count = page_file_header(path)
    assert count > 0, f"{name} holds no page"
    off = 4096 + rng.randrange(count * page_size)
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x01]))
    want_off = 4096 + (off - 4096) // page_size * page_size
    before = S.tree_hash(d)
    r = S.run(cmd, out + ".err")
    after = S.tree_hash(d)
    assert r.rc != 0, \
        f"exit 0 although no retained checkpoint {ids} verifies:\n" \
        f"{S.tail(r.stderr)}"
    needle = f"{name} at offset {want_off}"
    assert needle in r.stderr, \
        f"stderr does not name the damage ('{needle}'):\n{S.tail(r.stderr)}"
    assert before == after, "the refused job changed the directory"
    assert not os.path.exists(out), f"{out} written by a refused job"
    return f"ckpts {ids} all contain {name}; exit {r.rc}"


def foreign(tmp, name, job, theirs, ours):
    """A directory written by job + theirs, given to job + ours."""
    d = os.path.join(tmp, f"ck-foreign-{name}")
    r = S.run(S.flows_cmd(WEIR, job + theirs,
                          os.path.join(tmp, f"{name}-a.csv"), d, 50),
              os.path.join(tmp, f"{name}-a.err"))
    r.expect_ok()
    ids = S.ckpt_list(WEIR, d)
    assert ids, f"the {' '.join(theirs)} run left no checkpoint"
    before = S.tree_hash(d)
    out = os.path.join(tmp, f"{name}-b.csv")
    r = S.run(S.flows_cmd(WEIR, job + ours, out, d, 50), out + ".err")
    after = S.tree_hash(d)
    assert r.rc != 0, f"a {' '.join(ours)} job accepted a " \
                      f"{' '.join(theirs)} checkpoint (exit 0):\n" \
                      f"{S.tail(r.stderr)}"
    lines = [l for l in r.stderr.splitlines() if not l.startswith("weir flows: ")]
    assert len(lines) == 1, \
        f"want one error line on stderr, got {len(lines)}:\n{S.tail(r.stderr)}"
    assert "refused" in lines[0] and "another pipeline" in lines[0], \
        f"the error does not say why: {lines[0]!r}"
    assert before == after, \
        "the refused job changed the directory: " + ", ".join(
            sorted(n for n in set(before) | set(after)
                   if before.get(n) != after.get(n)))
    assert not os.path.exists(out + ".inprogress"), f"{out}.inprogress left"
    return f"exit {r.rc}: {lines[0][:90]}"


def main():
    tap = S.Tap()
    with S.scratch("weir-corrupt-", tap) as tmp:
        tap.diag(f"seed {SEED} (WEIR_CORRUPT_SEED); tmp {tmp}")
        ref = {}
        def reference():
            out = os.path.join(tmp, "ref.csv")
            s = S.run(S.flows_cmd(WEIR, JOB, out), out + ".err").expect_ok()
            assert int(s["packets"]) == PACKETS
            ref["rows"] = S.rows(out)
            return f"{sum(ref['rows'].values())} rows"
        have_ref = tap.point("reference run (no checkpoints)", reference)
        for k, mode in enumerate(("flip", "truncate", "flip-meta",
                                  "flip-version")):
            rng = random.Random(f"{SEED}:{k}")
            what = "the meta file" if mode == "flip-meta" else "its own file"
            name = (f"{mode} {what} of the newest checkpoint -> reported, "
                    f"previous one restored, exact output (seed={SEED}:{k})")
            if not have_ref:
                tap.point(name, lambda: (_ for _ in ()).throw(
                    AssertionError("no reference (see above)")))
                continue
            tap.point(name, lambda: corrupt_trial(tmp, ref["rows"], mode, rng))
        rng = random.Random(f"{SEED}:4")
        tap.point(f"a page file every retained checkpoint shares is damaged "
                  f"-> refused, reported, directory unchanged (seed={SEED}:4)",
                  lambda: shared_parent(tmp, rng))
        job = ["--gen", "--packets", "300000", "--flows", "20000",
               "--cores", "2"]
        tap.point("a directory of another job (--window 1000 vs 500) is "
                  "refused, one line, non-zero exit, directory unchanged",
                  lambda: foreign(tmp, "window", job + ["--rate", "600000"],
                                  ["--window", "1000"], ["--window", "500"]))
        tap.point("BUG-2: a generator directory written at --rate 600000 "
                  "(its event clock) is refused at --rate 1200000, one "
                  "line, directory unchanged",
                  lambda: foreign(tmp, "rate", job + ["--window", "100"],
                                  ["--rate", "600000"],
                                  ["--rate", "1200000"]))
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
