#!/usr/bin/env python3
"""check_bench_latency.py WEIR — `weir bench latency` and the metrics of
`weir flows` (issue 6) end to end, TAP output.

Test plan (no assertion on absolute times: the machine is shared):
  - a short run (1 core, 20000 records/s, 1 s) prints a flows and a floor
    line with p50 <= p90 <= p99 <= p99.9 <= p99.99 <= max and the achieved
    throughput, and writes latency.hgrm and floor.hgrm in HdrHistogram's
    text format whose total count equals the samples printed; latency.png
    exists when gnuplot is installed.
  - the Prometheus endpoint answers while the run goes on; the JSON metrics
    file's last line has records_in total == records_out total ==
    rate * duration (every offered record reached the window operator).
  - sweep over two rates writes sweep.tsv with one row per rate.
  - --peak --repeat 3: one line per run with its rates with sampling off
    and on (toggled every 50 ms within the run), each near the whole run's
    rate, and a median line whose peak is the median "off" rate and whose
    overhead is 1 - the median of the runs' on/off ratios.
  - checkpoints every 50 ms over 2 s: a "ckpt" line with samples > 0 next
    to the steady line; latency.hgrm and latency-checkpoint.hgrm hold
    exactly the steady and the during-checkpoint samples; timeline.tsv's
    windows add up to both; checkpoints.tsv lists committed checkpoints;
    the JSON metrics show checkpoints > 0 and checkpoint bytes > 0 on
    core 0; the default checkpoint directory is gone afterwards, one under
    --checkpoint-dir is kept and holds the checkpoints.
  - the hiccup probe (--hiccups 1) on a CPU shared with a busy process:
    the "hiccup" line reports at least 20% of the time away and gaps of
    1 ms or more; hiccups.tsv holds every gap (count >= 10 us and max
    agree with the line) and the bounds recomputed from it agree with the
    printed ones; with --peak, the "hiccup_load" line's load is the rate
    over the peak scaled to the time the CPU ran, and its bounds are the
    idle bounds at q' = 1 - (1 - q)(1 - load), recomputed the same way.
  - errors -> exit 2 and one line on stderr: --rate 0, --duration 0, a
    rate above what the generator can offer, a port in use, an unknown
    option, --checkpoint-interval 0, --checkpoint-dir alone, --hiccups
    601, --settle 61.
  - weir flows --metrics-json/--metrics-port with checkpoints: the endpoint
    answers during the run; the JSON file's last line has records_in over
    the cores == core 0's records_out == --packets, and core 0's
    checkpoints equal the summary's checkpoints= (> 0) with bytes > 0.
  - weir flows --pcap: malformed frames show in core 0's malformed.
  - weir flows with the metrics port in use: exit 2, one line, no output.
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

WEIR = sys.argv[1]
results = []
LINE = re.compile(r"^(flows|floor|ckpt)\s+rate=(\d+) achieved=(\d+)/s samples=(\d+) "
                  r"p50=([\d.]+)us p90=([\d.]+)us p99=([\d.]+)us "
                  r"p99\.9=([\d.]+)us p99\.99=([\d.]+)us max=([\d.]+)us")


def test(name):
    def wrap(fn):
        results.append((name, fn))
        return fn
    return wrap


def bench(*args, **kw):
    if "--hiccups" not in args:   # the probe's own test is below
        args = (*args, "--hiccups", "0")
    if "--settle" not in args:    # no wait between runs: nothing timed here
        args = (*args, "--settle", "0")
    return subprocess.run([WEIR, "bench", "latency", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def hgrm_total(path):
    text = open(path).read()
    assert text.startswith("       Value     Percentile TotalCount "
                           "1/(1-Percentile)\n\n"), text[:80]
    m = re.search(r"#\[Max     = +[\d.]+, Total count    = +(\d+)\]", text)
    assert m, "no #[Max footer"
    last = [l for l in text.splitlines() if l and not l.startswith("#")][-1]
    assert float(last.split()[1]) == 1.0, last
    assert "#[Mean    =" in text and "#[Buckets =" in text
    return int(m.group(1))


@test("short run: percentiles, .hgrm files, plot")
def short_run():
    d = tempfile.mkdtemp()
    r = bench("--rate", "20000", "--duration", "1", "--cores", "1", "--out", d)
    assert r.returncode == 0, r.stderr
    lines = [LINE.match(l) for l in r.stdout.splitlines() if LINE.match(l)]
    assert [m.group(1) for m in lines] == ["flows", "floor"], r.stdout
    for m, name in zip(lines, ["latency.hgrm", "floor.hgrm"]):
        p = [float(m.group(i)) for i in range(5, 11)]
        assert p == sorted(p), p
        assert int(m.group(3)) > 0
        samples = int(m.group(4))
        assert samples > 0 and hgrm_total(os.path.join(d, name)) == samples
    if shutil.which("gnuplot"):
        assert os.path.getsize(os.path.join(d, "latency.png")) > 1000
    shutil.rmtree(d)

HICCUP = re.compile(r"^hiccup cpus=(\d+) seconds=1 away=([\d.]+)% "
                    r"gaps>=10us=(\d+) gaps>=100us=(\d+) gaps>=1ms=(\d+) "
                    r"max=([\d.]+)us bound_p99=([\d.]+)us "
                    r"bound_p99\.9=([\d.]+)us bound_p99\.99=([\d.]+)us$")


HICCUP_LOAD = re.compile(r"^hiccup_load rate=(\d+) peak=(\d+) "
                         r"load=([\d.]+) bound_p99=([\d.]+)us "
                         r"bound_p99\.9=([\d.]+)us bound_p99\.99=([\d.]+)us$")


def bound_from(gaps_us, seconds, q):
    """Smallest x with sum(max(0, g - x)) / T <= 1 - q (apps/hiccup.h)."""
    budget = (1 - q) * seconds * 1e6
    if sum(gaps_us) <= budget:
        return 0.0
    lo, hi = 0.0, max(gaps_us)
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        if sum(g - mid for g in gaps_us if g > mid) <= budget:
            hi = mid
        else:
            lo = mid
    return hi


@test("hiccup probe: a CPU shared with a busy process is seen away")
def hiccups():
    cpu = min(os.sched_getaffinity(0))
    pin = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
    hog = subprocess.Popen([sys.executable, "-c",
                            "import time\nt=time.time()+12\n"
                            "while time.time()<t: pass"], preexec_fn=pin)
    d = tempfile.mkdtemp()
    try:
        time.sleep(0.2)
        r = bench("--rate", "20000", "--duration", "1", "--cores", "1",
                  "--no-floor", "--hiccups", "1", "--peak", "--repeat", "1",
                  "--out", d, preexec_fn=pin)
    finally:
        hog.kill()
        hog.wait()
    assert r.returncode == 0, r.stderr
    m = [HICCUP.match(l) for l in r.stdout.splitlines() if HICCUP.match(l)]
    assert len(m) == 1, r.stdout
    m = m[0]
    assert int(m.group(1)) == cpu, (cpu, m.group(0))
    assert float(m.group(2)) >= 20, m.group(0)   # CFS shares the CPU
    assert int(m.group(5)) >= 1, m.group(0)
    rows = open(os.path.join(d, "hiccups.tsv")).read().splitlines()
    assert rows[0] == "# cpu\tat_s\tgap_us", rows[0]
    gaps = [float(x.split("\t")[2]) for x in rows[1:]]
    assert all(int(x.split("\t")[0]) == cpu for x in rows[1:])
    assert all(g >= 2.0 for g in gaps), min(gaps)
    assert sum(g >= 10 for g in gaps) == int(m.group(3)), m.group(0)
    assert sum(g >= 1000 for g in gaps) == int(m.group(5)), m.group(0)
    assert abs(max(gaps) - float(m.group(6))) < 0.2, (max(gaps), m.group(0))
    for q, i in ((0.99, 7), (0.999, 8), (0.9999, 9)):
        want, got = bound_from(gaps, 1.0, q), float(m.group(i))
        assert abs(want - got) <= 0.01 * want + 0.05, (q, want, got)
    assert [LINE.match(l).group(1) for l in r.stdout.splitlines()
            if LINE.match(l)] == ["flows"], r.stdout  # the run went on
    ld = [HICCUP_LOAD.match(l) for l in r.stdout.splitlines()
          if HICCUP_LOAD.match(l)]
    assert len(ld) == 1 and ld[0].group(1) == "20000", r.stdout
    peak, load = float(ld[0].group(2)), float(ld[0].group(3))
    want = 20000 / (peak / (1 - float(m.group(2)) / 100))
    assert abs(load - want) <= 0.0005 + 0.01 * want, (load, want)
    for q, i in ((0.99, 4), (0.999, 5), (0.9999, 6)):
        qq = 1 - (1 - q) * (1 - load)
        want, got = bound_from(gaps, 1.0, qq), float(ld[0].group(i))
        assert abs(want - got) <= 0.01 * want + 0.05, (q, load, want, got)
        assert got >= float(m.group(i + 3)) - 0.05, (q, got, m.group(0))
    if shutil.which("gnuplot"):
        assert os.path.getsize(os.path.join(d, "hiccups.png")) > 1000
    shutil.rmtree(d)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@test("metrics: endpoint scraped during the run, JSON totals consistent")
def metrics():
    d = tempfile.mkdtemp()
    port, js = free_port(), os.path.join(d, "m.jsonl")
    p = subprocess.Popen([WEIR, "bench", "latency", "--rate", "30000",
                          "--duration", "2", "--cores", "2", "--no-floor",
                          "--out", d, "--metrics-port", str(port),
                          "--metrics-json", js],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    body = None
    for _ in range(200):
        try:
            body = urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
            break
        except OSError:
            time.sleep(0.02)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert body is not None, "endpoint never answered"
    for name in ["weir_records_in_total{core=\"0\"}",
                 "weir_records_out_total{core=\"1\"}",
                 "weir_backpressure_ns_total", "weir_ring_occupancy",
                 "weir_state_bytes", "weir_checkpoint_duration_ns",
                 "weir_latency_ns{phase=\"steady\",quantile=\"0.99\"}",
                 "weir_latency_ns_count{phase=\"checkpoint\"}"]:
        assert name in body, name
    last = json.loads(open(js).read().splitlines()[-1])
    rin = sum(c["records_in"] for c in last["cores"])
    rout = sum(c["records_out"] for c in last["cores"])
    assert rin == rout == 60000, (rin, rout)
    assert last["latency_ns"]["count"] > 0
    shutil.rmtree(d)


def checkpoint_run(d, *extra):
    js = os.path.join(d, "m.jsonl")
    r = bench("--rate", "20000", "--duration", "2", "--cores", "2",
              "--no-floor", "--checkpoint-interval", "50", "--out", d,
              "--metrics-json", js, *extra)
    assert r.returncode == 0, r.stderr
    lines = {m.group(1): m for m in map(LINE.match, r.stdout.splitlines())
             if m}
    assert sorted(lines) == ["ckpt", "flows"], r.stdout
    ck = re.search(r"^checkpoints interval=50ms completed=(\d+) failed=\d+ "
                   r"last_duration=[\d.]+ms last_bytes=(\d+)", r.stdout, re.M)
    assert ck and int(ck.group(1)) > 0 and int(ck.group(2)) > 0, r.stdout
    return r, lines, json.loads(open(js).read().splitlines()[-1]), \
        int(ck.group(1))


@test("checkpoints: steady and during-checkpoint apart, timeline, metrics")
def checkpoints():
    d = tempfile.mkdtemp()
    r, lines, last, completed = checkpoint_run(d)
    steady, during = (int(lines[k].group(4)) for k in ("flows", "ckpt"))
    assert during > 0, r.stdout
    assert hgrm_total(os.path.join(d, "latency.hgrm")) == steady
    assert hgrm_total(os.path.join(d, "latency-checkpoint.hgrm")) == during
    rows = [l.split("\t") for l in open(os.path.join(d, "timeline.tsv"))
            if not l.startswith("#")]
    assert sum(int(x[1]) for x in rows) == steady + during, rows
    marks = [l.split("\t") for l in open(os.path.join(d, "checkpoints.tsv"))
             if not l.startswith("#")]
    assert 0 < len(marks) <= completed, (marks, completed)
    assert all(float(m[0]) <= float(m[1]) for m in marks), marks
    core0 = last["cores"][0]
    assert core0["checkpoints"] > 0 and core0["checkpoint_bytes"] > 0, core0
    assert not [f for f in os.listdir(d) if f.startswith("ckpt-")], \
        os.listdir(d)
    if shutil.which("gnuplot"):
        assert os.path.getsize(os.path.join(d, "timeline.png")) > 1000
    shutil.rmtree(d)


@test("checkpoints: --checkpoint-dir keeps a run-XXXXXX directory")
def checkpoint_dir():
    d, keep = tempfile.mkdtemp(), tempfile.mkdtemp()
    r, _, _, _ = checkpoint_run(d, "--checkpoint-dir", keep)
    runs = os.listdir(keep)
    assert len(runs) == 1 and runs[0].startswith("run-"), runs
    assert "dir=%s/%s" % (keep, runs[0]) in r.stdout, r.stdout
    assert os.listdir(os.path.join(keep, runs[0])), "no checkpoint files"
    shutil.rmtree(d)
    shutil.rmtree(keep)


@test("sweep: one row per rate in sweep.tsv")
def sweep():
    d = tempfile.mkdtemp()
    r = bench("--sweep", "10000,20000", "--duration", "1", "--cores", "1",
              "--out", d)
    assert r.returncode == 0, r.stderr
    rows = open(os.path.join(d, "sweep.tsv")).read().splitlines()
    assert rows[0].startswith("rate\tachieved\tp50_us"), rows[0]
    assert [x.split("\t")[0] for x in rows[1:]] == ["10000", "20000"], rows
    shutil.rmtree(d)


PEAK_RUN = re.compile(r"^peak   run (\d+): sampling off (\d+)/s on (\d+)/s "
                      r"\(toggled every 50 ms\) whole run (\d+)/s")
PEAK_MEDIAN = re.compile(r"^peak   median off=(\d+)/s on=(\d+)/s sampling "
                         r"overhead=(-?[\d.]+)% \(median of (\d+) runs;")


@test("peak: sampling toggled within each run; overhead = 1 - on/off")
def peak_runs():
    d = tempfile.mkdtemp()
    r = bench("--peak", "--repeat", "3", "--duration", "1", "--cores", "1",
              "--no-floor", "--rate", "20000", "--out", d)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    runs = [PEAK_RUN.match(l) for l in lines if PEAK_RUN.match(l)]
    assert [int(m.group(1)) for m in runs] == [1, 2, 3], r.stdout
    for m in runs:
        off, on, whole = (int(m.group(i)) for i in (2, 3, 4))
        assert off > 0 and on > 0, m.group(0)
        # both phases are parts of the run: neither is far from the whole
        assert 0.5 < off / whole < 2 and 0.5 < on / whole < 2, m.group(0)
    med = [PEAK_MEDIAN.match(l) for l in lines if PEAK_MEDIAN.match(l)]
    assert len(med) == 1 and med[0].group(4) == "3", r.stdout
    offs = sorted(int(m.group(2)) for m in runs)
    ratios = sorted(int(m.group(3)) / int(m.group(2)) for m in runs)
    assert int(med[0].group(1)) == offs[1], (offs, med[0].group(0))
    assert abs(float(med[0].group(3)) - 100 * (1 - ratios[1])) < 0.06, \
        (ratios, med[0].group(0))
    shutil.rmtree(d)


def refused(args, words):
    r = bench(*args, "--out", tempfile.mkdtemp())
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("weir: "), r.stderr
    assert words in lines[0], (words, lines[0])


@test("errors: rate 0, duration 0, rate too high, port in use, bad option, "
      "checkpoint options")
def errors():
    refused(["--rate", "0", "--duration", "1"], "--rate 0")
    refused(["--rate", "1000", "--duration", "0"], "--duration 0")
    refused(["--rate", "99000000000", "--duration", "1"],
            "above what the generator can offer")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    refused(["--rate", "1000", "--duration", "1", "--metrics-port",
             str(s.getsockname()[1])], "already in use")
    s.close()
    refused(["--rate", "1000", "--bogus", "1"], "unknown option")
    refused(["--rate", "1000", "--checkpoint-interval", "0"],
            "--checkpoint-interval")
    refused(["--rate", "1000", "--checkpoint-dir", "/tmp"],
            "needs --checkpoint-interval")
    refused(["--duration", "1"], "--rate")
    refused(["--rate", "1000", "--hiccups", "601"], "--hiccups")
    refused(["--rate", "1000", "--settle", "61"], "--settle")
    r = bench("--rate", "1000", "--out", "/tmp/" + "d" * 600)
    assert r.returncode == 2 and "--out" in r.stderr, (r.returncode, r.stderr)
    assert not os.path.exists("/tmp/" + "d" * 600)


def scrape(port, proc):
    """The endpoint's body, tried until it answers or proc ends."""
    while proc.poll() is None:
        try:
            return urllib.request.urlopen(
                "http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
        except OSError:
            time.sleep(0.02)
    return None


def flows_summary(stderr):
    line = [l for l in stderr.splitlines() if l.startswith("weir flows: input=")]
    assert line, stderr
    return dict(kv.split("=", 1) for kv in line[-1].split()[2:])


@test("flows: metrics endpoint and JSON with checkpoints")
def flows_metrics():
    d = tempfile.mkdtemp()
    port, js = free_port(), os.path.join(d, "m.jsonl")
    p = subprocess.Popen([WEIR, "flows", "--packets", "200000", "--rate",
                          "100000", "--cores", "2", "--out",
                          os.path.join(d, "o.csv"), "--checkpoint-dir",
                          os.path.join(d, "ck"), "--checkpoint-interval", "100",
                          "--metrics-json", js, "--metrics-port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    body = scrape(port, p)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert body is not None, "endpoint never answered"
    for name in ["weir_records_in_total{core=\"1\"}",
                 "weir_records_out_total{core=\"0\"}",
                 "weir_state_keys{core=\"1\"}", "weir_checkpoints_total"]:
        assert name in body, name
    last = json.loads(open(js).read().splitlines()[-1])
    core0 = last["cores"][0]
    assert sum(c["records_in"] for c in last["cores"]) == 200000, last
    assert core0["records_out"] == 200000, core0
    summary = flows_summary(err)
    assert int(summary["checkpoints"]) > 0, summary
    assert core0["checkpoints"] == int(summary["checkpoints"]), (core0, summary)
    assert core0["checkpoint_bytes"] > 0, core0
    shutil.rmtree(d)


def write_pcap(path, frames):
    """pcap, microseconds, Ethernet; frames: bytes, 1 ms apart."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i * 1000, len(fr),
                                len(fr)) + fr)


def udp_frame(first_byte):
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", first_byte, 0, 28, 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return eth + ip + struct.pack(">HHHH", 1234, 53, 8, 0)


@test("flows: malformed frames of a capture in the metrics")
def flows_malformed():
    d = tempfile.mkdtemp()
    cap, js = os.path.join(d, "m.pcap"), os.path.join(d, "m.jsonl")
    write_pcap(cap, [udp_frame(0x45), udp_frame(0x44), udp_frame(0x45),
                     udp_frame(0x44), udp_frame(0x44)])
    r = subprocess.run([WEIR, "flows", "--pcap", cap, "--cores", "2", "--out",
                        os.path.join(d, "o.csv"), "--metrics-json", js],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert flows_summary(r.stderr)["malformed"] == "3", r.stderr
    last = json.loads(open(js).read().splitlines()[-1])
    assert last["cores"][0]["malformed"] == 3, last
    assert sum(c["records_in"] for c in last["cores"]) == 2, last
    shutil.rmtree(d)


@test("flows: metrics port in use -> exit 2, one line, no output")
def flows_port_in_use():
    d = tempfile.mkdtemp()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    r = subprocess.run([WEIR, "flows", "--packets", "1000", "--out",
                        os.path.join(d, "o.csv"), "--metrics-port",
                        str(s.getsockname()[1])],
                       capture_output=True, text=True, timeout=120)
    s.close()
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0], r.stderr
    assert lines[0].startswith("weir: flows: "), lines
    assert os.listdir(d) == [], os.listdir(d)
    shutil.rmtree(d)


print("1..%d" % len(results))
failed = 0
for i, (name, fn) in enumerate(results, 1):
    try:
        fn()
        print("ok %d - %s" % (i, name))
    except Exception as e:  # noqa: BLE001 - report any failure as TAP
        failed += 1
        print("not ok %d - %s" % (i, name))
        for line in repr(e).splitlines():
            print("# " + line)
    sys.stdout.flush()
sys.exit(1 if failed else 0)
