#!/usr/bin/env python3
"""check_dpdk.py WEIR MAKE_CAPTURE HAVE_DPDK SANITIZED — `weir flows --dpdk`
end to end on virtual devices (EAL --no-huge --no-pci), TAP output.

Every run is its own weir process (the EAL is once per process) with its own
--file-prefix; the EAL's runtime directory is removed afterwards.

Test plan:
  - without DPDK in the build (HAVE_DPDK=0): --dpdk -> exit 2, one line
    naming the missing DPDK; every other test is a visible SKIP.
  - net_pcap (rx_pcap = a capture written by make_capture, infinite_rx=0),
    --packets = frames in the file, 1 and 2 cores: per-flow packet and byte
    totals (summed over windows: DPDK windows use the arrival time) equal
    those of `weir flows --pcap` on the same file; packets, ip, malformed,
    non_ip equal; drops=0; late=0; no .inprogress left.
  - two net_pcap ports of the same file: every flow counted twice (all
    ports are read).
  - the same file without --packets, SIGINT once the frames are in: exit 0,
    status=ok, the per-flow totals are complete (every window is written at
    a signal stop).
  - a quiet link (the same file read once, no --packets, 2 cores, 200 ms
    windows, --max-delay 100): while the run goes on, FILE.inprogress
    comes to hold every flow's totals (the cores' watermarks follow the
    clock once no frame comes; the sink writes waiting rows after 1 s);
    then SIGINT, and the finished file has the same totals.
  - --metrics-json on the same quiet link: while the run goes on, a
    JSON line's core 0 says records_out = the frames, malformed = the
    --pcap run's, drops = 0 (they used to come only at the end).
  - --duration 1 on net_null (endless frames of zeros): ends by itself,
    exit 0, packets > 0 all non_ip, a CSV with only the header; with 2
    cores net_null's RETA is programmed (rss_ports=1, queues=2).
  - --checkpoint-dir with --dpdk: the first stderr line says the source is
    live and not replayable (at-most-once), checkpoints are taken, exit 0;
    `weir checkpoint inspect` says so for each core.
  - errors, each exit 2, one stderr line, no output file: an unknown EAL
    option (named), no ports (the missing capture named), --rate with
    --dpdk.
"""
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WEIR, MAKE, HAVE_DPDK, SANITIZED = sys.argv[1:5]
HEADER = "window_start_ms,window_end_ms,proto,src,sport,dst,dport,packets,bytes"
results = []
runs = [0]


def test(name):
    def wrap(fn):
        results.append((name, fn))
        return fn
    return wrap


def eal(vdevs):
    runs[0] += 1
    prefix = f"weir-flows-test-{os.getpid()}-{runs[0]}"
    args = (f"--no-huge --no-pci -m 256 -l 0 --no-telemetry "
            f"--file-prefix={prefix} " + " ".join(vdevs))
    return args, prefix


def eal_cleanup(prefix):
    shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)


def flows(args, out, prefix=None, timeout=120):
    try:
        return subprocess.run([WEIR, "flows"] + args + ["--out", out],
                              capture_output=True, text=True,
                              timeout=timeout)
    finally:
        if prefix:
            eal_cleanup(prefix)


def summary(stderr):
    last = stderr.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in last.split() if "=" in kv)


def totals(path):
    """Per-flow [packets, bytes] summed over windows."""
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == HEADER, f"header {lines[0]!r}"
    acc = collections.defaultdict(lambda: [0, 0])
    for line in lines[1:]:
        c = line.split(",")
        acc[tuple(c[2:7])][0] += int(c[7])
        acc[tuple(c[2:7])][1] += int(c[8])
    return acc


def capture(tmp, frames=4000):
    path = os.path.join(tmp, "c.pcap")
    subprocess.run([MAKE, path, "pcap-us", "11", str(frames)],
                   capture_output=True, text=True, check=True)
    return path


def reference(tmp, path):
    out = os.path.join(tmp, "ref.csv")
    r = flows(["--pcap", path], out)
    assert r.returncode == 0, r.stderr
    return totals(out), summary(r.stderr)


def same_counters(s, ref, times=1):
    for k in ("packets", "ip", "malformed", "non_ip"):
        assert int(s[k]) == times * int(ref[k]), f"{k}: {s} vs {ref}"
    assert s["input"] == "dpdk" and s["status"] == "ok", s
    assert s["drops"] == "0" and s["late"] == "0", s


def same_totals(got, want, times=1):
    want = {k: [times * v[0], times * v[1]] for k, v in want.items()}
    diff = set(got) ^ set(want)
    assert not diff, f"{len(diff)} flows differ, e.g. {sorted(diff)[:2]}"
    bad = [k for k in want if got[k] != want[k]]
    assert not bad, f"{len(bad)} flows with other totals, e.g. " \
        f"{bad[0]}: {got[bad[0]]} vs {want[bad[0]]}"


def pcap_run(tmp, cores, ports):
    path = capture(tmp)
    want, ref = reference(tmp, path)
    vdevs = [f"--vdev=net_pcap{i},rx_pcap={path},infinite_rx=0"
             for i in range(ports)]
    args, prefix = eal(vdevs)
    out = os.path.join(tmp, "d.csv")
    n = ports * int(ref["packets"])
    r = flows(["--dpdk", args, "--packets", str(n), "--cores", str(cores)],
              out, prefix)
    assert r.returncode == 0, r.stderr
    s = summary(r.stderr)
    same_counters(s, ref, ports)
    assert s["ports"] == str(ports) and s["rss_ports"] == "0", s
    same_totals(totals(out), want, ports)
    assert not os.path.exists(out + ".inprogress")


for cores in (1, 2):
    test(f"net_pcap, {cores} core(s): per-flow totals = --pcap")(
        lambda tmp, c=cores: pcap_run(tmp, c, 1))
test("two net_pcap ports: every flow counted twice")(
    lambda tmp: pcap_run(tmp, 2, 2))


def sigint_run(tmp, extra, wait):
    """weir flows --dpdk on net_pcap of a fresh capture read once (no
    --packets): wait(p, out, want, ref) while it runs (want: the flows'
    totals, ref: the --pcap run's summary), then SIGINT; the run must end
    with exit 0 and every flow's totals.  Returns what wait returned."""
    path = capture(tmp)
    want, ref = reference(tmp, path)
    args, prefix = eal([f"--vdev=net_pcap0,rx_pcap={path},infinite_rx=0"])
    out = os.path.join(tmp, "d.csv")
    p = subprocess.Popen([WEIR, "flows", "--dpdk", args, "--out", out] +
                         extra, stderr=subprocess.PIPE, text=True)
    try:
        got = wait(p, out, want, ref)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        eal_cleanup(prefix)
    assert p.returncode == 0, err
    same_counters(summary(err), ref)
    same_totals(totals(out), want)
    return got


@test("SIGINT ends the input, every window written")
def sigint(tmp):
    sigint_run(tmp, [], lambda p, out, want, ref:
               time.sleep(3.0 if SANITIZED == "1" else 1.5))


def totals_now(path):
    """totals() of a file still being written, or None while incomplete."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not text.endswith("\n") or "\0" in text:
        return None
    return totals(path)


def until_written(p, out, want, ref):
    """Whether FILE.inprogress came to hold every flow's totals while the
    run still went on."""
    deadline = time.monotonic() + (30 if SANITIZED == "1" else 15)
    while time.monotonic() < deadline and p.poll() is None:
        if totals_now(out + ".inprogress") == want:
            return p.poll() is None
        time.sleep(0.05)
    return False


@test("a quiet link: every window is in FILE.inprogress while it runs")
def quiet(tmp):
    assert sigint_run(tmp, ["--window", "200", "--max-delay", "100",
                            "--cores", "2"], until_written), \
        "the windows were not all in the file while the run went on"


@test("--metrics-json while it runs: records_out, malformed, drops of "
      "what came")
def live_metrics(tmp):
    path = os.path.join(tmp, "m.json")

    def until_counted(p, out, want, ref):
        deadline = time.monotonic() + (30 if SANITIZED == "1" else 15)
        while time.monotonic() < deadline and p.poll() is None:
            try:
                with open(path) as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                lines = []
            for line in lines[-1:]:
                c0 = json.loads(line)["cores"][0]
                if c0["records_out"] == int(ref["packets"]):
                    assert c0["malformed"] == int(ref["malformed"]), c0
                    assert c0["drops"] == 0, c0
                    return p.poll() is None
            time.sleep(0.1)
        return False

    assert sigint_run(tmp, ["--metrics-json", path, "--cores", "2"],
                      until_counted), \
        "records_out never reached the frames while the run went on"


@test("--duration on net_null: ends by itself; RETA on 2 cores")
def duration(tmp):
    args, prefix = eal(["--vdev=net_null0"])
    out = os.path.join(tmp, "n.csv")
    t0 = time.monotonic()
    r = flows(["--dpdk", args, "--duration", "1", "--cores", "2"], out,
              prefix)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    s = summary(r.stderr)
    assert int(s["packets"]) > 0 and s["non_ip"] == s["packets"], s
    assert s["ip"] == "0" and s["rows"] == "0", s
    assert s["queues"] == "2" and s["rss_ports"] == "1", s
    with open(out) as f:
        assert f.read() == HEADER + "\n"


def check_error(tmp, args, needles, prefix=None, lines_max=1, also=""):
    out = os.path.join(tmp, "never.csv")
    r = flows(args, out, prefix, timeout=60)
    assert r.returncode == 2, f"exit {r.returncode}: {r.stderr!r}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == lines_max, f"stderr: {r.stderr!r}"
    for i, n in enumerate(needles):
        assert n in lines[i], f"{n!r} not in {lines[i]!r}"
    assert also in lines[0], f"{also!r} not in {lines[0]!r}"
    assert not os.path.exists(out) and not os.path.exists(out + ".inprogress")


@test("error: unknown EAL option -> exit 2, one line naming it")
def bad_eal(tmp):
    args, prefix = eal(["--frobnicate"])
    check_error(tmp, ["--dpdk", args], ["unrecognized option '--frobnicate'"],
                prefix)


@test("error: no ports (capture missing) -> exit 2, one line naming it")
def no_ports(tmp):
    missing = os.path.join(tmp, "missing.pcap")
    args, prefix = eal([f"--vdev=net_pcap0,rx_pcap={missing}"])
    check_error(tmp, ["--dpdk", args], ["no ports"], prefix,
                also="missing.pcap")


@test("error: --rate with --dpdk -> exit 2")
def rate(tmp):
    args, _ = eal(["--vdev=net_null0"])
    check_error(tmp, ["--dpdk", args, "--rate", "1000"],
                ["--rate does not apply to --dpdk"])


@test("--checkpoint-dir with --dpdk: says live, not replayable, runs")
def live(tmp):
    args, prefix = eal(["--vdev=net_null0"])
    out = os.path.join(tmp, "k.csv")
    r = flows(["--dpdk", args, "--duration", "2", "--cores", "2",
               "--checkpoint-dir", os.path.join(tmp, "ck"),
               "--checkpoint-interval", "200"], out, prefix)
    assert r.returncode == 0, r.stderr
    first = r.stderr.strip().splitlines()[0]
    assert "'dpdk' is live, not replayable" in first, first
    assert "at-most-once" in first, first
    s = summary(r.stderr)
    assert s["status"] == "ok" and int(s["checkpoints"]) > 0, s
    r = subprocess.run([WEIR, "checkpoint", "inspect",
                        os.path.join(tmp, "ck")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("no source position: live sources") == 2, \
        r.stdout


def no_dpdk(tmp):
    check_error(tmp, ["--dpdk", "--no-huge"], ["built without DPDK"])


def main():
    todo = results
    if HAVE_DPDK != "1":
        todo = [("--dpdk without DPDK -> exit 2, one line", no_dpdk)] + \
            [(n, lambda t: "SKIP weir built without DPDK") for n, _ in results]
    print(f"1..{len(todo)}")
    failed = 0
    for i, (name, fn) in enumerate(todo, 1):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                r = fn(tmp)
                if isinstance(r, str) and r.startswith("SKIP"):
                    print(f"ok {i} {name} # {r}")
                else:
                    print(f"ok {i} {name}")
            except Exception as e:  # noqa: BLE001 - report every failure
                failed += 1
                print(f"not ok {i} {name}: {type(e).__name__}: {e}")
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
