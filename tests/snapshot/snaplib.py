"""snaplib.py — shared helpers of the checkpoint fault tests (kill_test.py,
diskfull_engine_test.py, corrupt_engine_test.py).  Python 3 stdlib only.

Every check is a TAP test point printed as soon as it is done; the plan line
comes last (TAP allows a trailing plan), so a crash half way still shows what
passed.  A failure is an AssertionError whose message says what a user would
see: the command, the exit status, the stderr tail, the rows that differ.
"""
import collections
import contextlib
import ctypes
import errno
import glob
import hashlib
import os
import re
import select
import shlex
import signal
import struct
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HEADER = "window_start_ms,window_end_ms,proto,src,sport,dst,dport,packets,bytes"
RUN_TIMEOUT = 300  # a hung run fails the test instead of hanging CI


class Tap:
    """TAP producer: ok/not ok/# SKIP/# TODO, plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def diag(self, text):
        for line in str(text).splitlines():
            print(f"# {line}")
        sys.stdout.flush()

    def point(self, name, fn, todo=None):
        """Run fn(); ok if it returns, not ok if it raises.  fn may return a
        string starting with 'SKIP ' (skipped visibly) or any other string
        (appended to the name as detail).  todo: a reason; the point is then
        marked # TODO (a known engine bug: a failure does not fail CI)."""
        self.n += 1
        detail, skip = "", None
        try:
            r = fn()
            ok = True
            if isinstance(r, str):
                if r.startswith("SKIP"):
                    skip = r[4:].strip()
                else:
                    detail = r
        except KnownBug as e:
            ok = False
            todo = e.todo
            msg = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - every failure is reported
            ok = False
            msg = f"{type(e).__name__}: {e}"
            if not isinstance(e, AssertionError):
                msg += "\n" + traceback.format_exc()
        line = f"{'ok' if ok else 'not ok'} {self.n} - {name}"
        if detail:
            line += f" [{detail}]"
        if skip is not None:
            line += f" # SKIP {skip}"
        elif todo:
            line += f" # TODO {todo}"
        print(line)
        if not ok:
            if not todo:
                self.failed += 1
            for m in msg.splitlines():
                print(f"#   {m}")
        sys.stdout.flush()
        return ok

    def skip(self, name, reason):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {reason}")
        sys.stdout.flush()

    def finish(self):
        print(f"1..{self.n}")
        sys.stdout.flush()
        return 1 if self.failed else 0


@contextlib.contextmanager
def scratch(prefix, tap):
    """A temporary directory for one test script, removed at the end
    whatever happened, or kept (and named on the TAP stream) with
    WEIR_KEEP_TMP=1."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        if os.environ.get("WEIR_KEEP_TMP") == "1":
            tap.diag(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def fill_up(path, leave):
    """Write path until the file system is full, then give back `leave`
    bytes (the job writes concurrently: no statvfs arithmetic)."""
    chunk = b"\x5a" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 0
        while True:
            try:
                n = os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            size += n
            if n < len(chunk):
                break
        os.ftruncate(fd, max(0, size - leave))
    finally:
        os.close(fd)


def cmdline(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


def tail(text, n=12):
    lines = text.strip().splitlines()
    more = f"... ({len(lines) - n} lines before)\n" if len(lines) > n else ""
    return more + "\n".join(lines[-n:])


def summary(stderr):
    """The key=value fields of the `weir flows:` summary line on stderr."""
    lines = [l for l in stderr.splitlines() if l.startswith("weir flows: ")]
    assert len(lines) == 1, \
        f"expected one summary line on stderr, got {len(lines)}:\n{tail(stderr)}"
    return dict(kv.split("=", 1) for kv in lines[0].split()[2:] if "=" in kv)


class Run:
    def __init__(self, cmd, rc, stderr, secs, killed=False):
        self.cmd, self.rc, self.stderr, self.secs = cmd, rc, stderr, secs
        self.killed = killed

    def summary(self):
        return summary(self.stderr)

    def expect_stopped(self, out):
        """A clean stop by SIGTERM/SIGINT: exit 3, status=stopped, the
        output still out.inprogress -- or, when the stop raced with the
        end of the input, exit 0, status=ok and out complete.  Returns the
        summary."""
        s = self.summary()
        if self.rc == 0 and s.get("status") == "ok":
            assert os.path.exists(out), f"status=ok but no {out}"
            return s
        assert self.rc == 3 and s.get("status") == "stopped", \
            (f"a stopped run: exit {self.rc} status={s.get('status')}, "
             f"want 3 and stopped\nstderr:\n{tail(self.stderr)}")
        assert os.path.exists(out + ".inprogress"), \
            f"status=stopped but no {out}.inprogress"
        return s

    def expect_ok(self):
        """Exit 0, status=ok; returns the summary."""
        assert self.rc == 0, (f"exit status {self.rc} from {cmdline(self.cmd)}"
                              f"\nstderr:\n{tail(self.stderr)}")
        s = self.summary()
        assert s.get("status") == "ok", \
            f"summary status={s.get('status')}:\n{tail(self.stderr)}"
        return s


def flows_cmd(weir, args, out, ckdir=None, interval=None):
    """A `weir flows` command; with a checkpoint directory the changelog is
    on unless args say otherwise (`weir flows` defaults to off: these tests
    cover both kinds of checkpoint, pages between the logs)."""
    cmd = [weir, "flows"] + list(args) + ["--out", out]
    if ckdir is not None:
        cmd += ["--checkpoint-dir", ckdir]
        if "--changelog" not in args:
            cmd += ["--changelog", "on"]
    if interval is not None:
        cmd += ["--checkpoint-interval", str(interval)]
    return cmd


def run(cmd, errfile):
    """Run to completion; stderr goes to errfile (never a pipe that fills)."""
    t0 = time.monotonic()
    with open(errfile, "w") as ef:
        try:
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=ef,
                               timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit after {RUN_TIMEOUT} s: "
                                 f"{cmdline(cmd)}") from None
    with open(errfile) as ef:
        return Run(cmd, p.returncode, ef.read(), time.monotonic() - t0)


def run_killed(cmd, errfile, delay, ckdir=None, need_ids=0):
    """Start cmd, SIGKILL it `delay` seconds after the start — and, when
    need_ids > 0, not before ckdir holds that many committed manifests (the
    kill must land after a checkpoint; looked at every 2 ms).  Returns a
    Run with killed=False when the job ended on its own first."""
    def when(el, new):
        if el < delay:
            return delay - el
        if need_ids == 0 or len(committed_files(ckdir)) >= need_ids:
            return True
        return 0.002
    return run_until(cmd, errfile, when)


class Inotify:
    """Events on a few directories through inotify(7), by ctypes (stdlib
    only).  read() -> [(label, mask, name)] (non-blocking; select() on
    .fd); a watch is set up before the job starts, so no event of the run
    is missed."""
    CREATE, DELETE, MOVED_TO, OPEN = 0x100, 0x200, 0x80, 0x20

    def __init__(self, watches):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                           ctypes.c_uint32]
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.labels = {}
        for label, path, mask in watches:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
            if wd < 0:
                e = ctypes.get_errno()
                os.close(self.fd)
                raise OSError(e, f"inotify_add_watch {path}")
            self.labels[wd] = label

    def read(self):
        try:
            buf = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        out, off = [], 0
        while off + 16 <= len(buf):
            wd, mask, _, n = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + n].split(b"\0", 1)[0]
            out.append((self.labels.get(wd), mask, name.decode()))
            off += 16 + n
        return out

    def close(self):
        os.close(self.fd)


def run_until(cmd, errfile, when, sig=signal.SIGKILL, watches=()):
    """Start cmd and send it sig once when(elapsed_s, new_events) returns
    True.  Otherwise when() returns how many seconds may pass before it is
    asked again (None or False: not before an event); it is asked after
    every batch of inotify events of `watches` [(label, dir, mask)] too.
    The wait is one select() on the inotify fd and the process's pidfd, not
    a poll: a parent waking every 0.5 ms made a 0.6 s `weir flows` run take
    1-60 s on this 2-CPU VM (io-wq helpers pinned with the busy workers).
    Returns a Run with killed=True if the signal reached a live process,
    .signalled (sent at all) and .events: every (label, mask, name)."""
    ino = Inotify(watches) if watches else None
    seen, new = [], []
    t0 = time.monotonic()
    try:
        with open(errfile, "w") as ef:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef)
            pfd = os.pidfd_open(p.pid)
            try:
                fire = False
                while True:
                    el = time.monotonic() - t0
                    wait = when(el, new)
                    if wait is True:
                        fire = True
                        break
                    if el > RUN_TIMEOUT:
                        raise AssertionError(f"no exit after {RUN_TIMEOUT} "
                                             f"s: {cmdline(cmd)}")
                    left = RUN_TIMEOUT - el
                    wait = left if wait is None or wait is False else \
                        min(max(wait, 0.0), left)
                    fds = [pfd] + ([ino.fd] if ino else [])
                    ready = select.select(fds, [], [], wait)[0]
                    new = ino.read() if ino and ino.fd in ready else []
                    seen += new
                    if pfd in ready:
                        break  # it exited
                sent = fire and p.poll() is None
                if sent:
                    p.send_signal(sig)
                rc = p.wait()
            except BaseException:
                p.kill()
                p.wait()
                raise
            finally:
                os.close(pfd)
    finally:
        if ino:
            ino.close()
    with open(errfile) as ef:
        r = Run(cmd, rc, ef.read(), time.monotonic() - t0,
                sent and rc == -sig)
    r.events = seen
    r.signalled = sent
    return r


MANIFEST_RE = re.compile(r"^MANIFEST-(\d{20})$")


def committed_files(ckdir):
    """Ids of the committed manifests in ckdir (names only; no parsing)."""
    try:
        names = os.listdir(ckdir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(MANIFEST_RE.match, names) if m)


def ckpt_list(weir, ckdir):
    """Ids printed by `weir checkpoint list DIR`, oldest first."""
    r = subprocess.run([weir, "checkpoint", "list", ckdir], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, \
        f"weir checkpoint list {ckdir}: exit {r.returncode}: {r.stderr.strip()}"
    ids = []
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0].isdigit():
            ids.append(int(f[0]))
    return ids


def ckpt_verify(weir, ckdir, ckid=None):
    cmd = [weir, "checkpoint", "verify", ckdir] + ([str(ckid)] if ckid else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def manifest(ckdir, ckid):
    """{'cores': n, 'page_size': n, 'files': {core: {'pages': [names newest
    first], 'logs': [changelog files newest first], 'meta': name}}} from
    MANIFEST-<id>."""
    path = os.path.join(ckdir, f"MANIFEST-{ckid:020d}")
    m = {"files": {}}
    core = None
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] in ("cores", "page_size", "id", "parent"):
                m[w[0]] = int(w[1])
            elif w[0] == "core":
                core = int(w[1])
                m["files"][core] = {"pages": [], "logs": [], "meta": None}
            elif w[0] == "pages":
                m["files"][core]["pages"].append(w[1])
            elif w[0] == "log":
                m["files"][core]["logs"].append(w[1])
            elif w[0] == "meta":
                m["files"][core]["meta"] = w[1]
    return m


FILE_ID_RE = re.compile(r"^(?:ckpt-|MANIFEST-)(\d{20})")


def orphans(ckdir, upto=None):
    """ckpt-* files no committed manifest names, and *.tmp manifests: what a
    finished (not killed) run must not leave behind.  upto: only files of
    checkpoint ids <= upto (retention sweeps those; newer ones may be left
    by a killed run until a later commit)."""
    named = set()
    for i in committed_files(ckdir):
        for c in manifest(ckdir, i)["files"].values():
            named.update(c["pages"])
            named.update(c["logs"])
            if c["meta"]:
                named.add(c["meta"])
    left = []
    for n in sorted(os.listdir(ckdir)):
        m = FILE_ID_RE.match(n)
        if upto is not None and (not m or int(m.group(1)) > upto):
            continue
        if (n.startswith("ckpt-") and n not in named) or n.endswith(".tmp"):
            left.append(n)
    return left


def rows(path):
    """The CSV's data rows as a multiset (header checked)."""
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines and lines[0] == HEADER, \
        f"{path}: first line {lines[0] if lines else '(empty file)'!r}"
    return collections.Counter(lines[1:])


class KnownBug(AssertionError):
    """A failure matching a known engine bug: Tap marks the point # TODO."""

    def __init__(self, msg, todo):
        super().__init__(msg)
        self.todo = todo


def same_rows(path, ref, what=""):
    """Assert the rows of path equal ref (a Counter) as multisets."""
    got = rows(path)
    if got == ref:
        return
    missing = ref - got
    extra = got - ref
    ex = lambda c: "\n".join(f"    {l} (x{n})" for l, n in list(c.items())[:5])
    raise AssertionError(
        f"{what}output differs from the uninterrupted run: "
        f"{sum(got.values())} rows, reference {sum(ref.values())}; "
        f"{sum(missing.values())} missing, {sum(extra.values())} extra or "
        f"duplicated\n  missing e.g.:\n{ex(missing)}\n  extra e.g.:\n{ex(extra)}")


def tree_hash(d):
    """{relative name: (mode, sha256)} of every file under d."""
    out = {}
    for root, _, files in os.walk(d):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = (os.stat(p).st_mode,
                                              hashlib.sha256(f.read()).hexdigest())
    return out


def restoring_line(stderr):
    """(id, cores) of 'weir: restoring checkpoint ID (C cores) from DIR'."""
    m = re.search(r"^weir: restoring checkpoint (\d+) \((\d+) cores\)", stderr,
                  re.M)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def cleanup_glob(pattern):
    for p in glob.glob(pattern):
        try:
            os.unlink(p)
        except OSError:
            pass
