#!/usr/bin/env python3
"""corpus_xcheck.py WEIR [CORPUS_DIR [FILE...]] — `weir flows` against tshark
over the tcpdump test corpus (real captures), TAP output, one test per file.

Test plan:
  - The corpus is tcpdump's own test captures (BSD licensed, never copied
    into this repository): CORPUS_DIR, else $WEIR_CORPUS_DIR, else
    ../shared/corpus/tcpdump next to the source tree.  No corpus, or no
    tshark/capinfos: one TAP line `# SKIP` saying which.
  - Every capture weir accepts (exit 0): `weir flows --pcap F --cores 1
    --window 1000` against a model built from tshark's per-packet fields
    (one tshark run per file, outer headers only, IPv4/IPv6 reassembly off),
    aggregated as the contract says: key (proto, src, sport, dst, dport),
    window [floor(ts_ms/W)*W, +W), bytes = IPv4 total length or IPv6
    payload length + 40.  The CSV rows must equal the model's as multisets,
    and the summary counters (packets ip malformed non_ip unsupported
    truncated) must equal what tshark implies.  Times are tshark's; for
    classic pcap every record header's time must agree with it.
  - The model is tshark's view plus weir's documented rules (docs/net.md,
    "Classification rules"), each a named RULE below citing its line: a
    frame tshark dissects as IP that weir's rules call MALFORMED or NON_IP
    is expected to be counted so, and it is tallied under the rule's name.
    Anything the rules do not explain is a failure ("unexplained").  The
    rules' tallies end the output (WEIR_CORPUS_VERBOSE=1: per file, with
    frame numbers).  Whole corpus, tshark 4.0.17: 621 files, 419 accepted,
    all equal; 202 refused, all agreed (table: docs/net.md, "Corpus
    cross-check against tshark").
  - Every capture weir refuses (exit 2): exactly one stderr line naming the
    link type ("link type N (NAME) is not supported"), and capinfos
    (Wireshark's wiretap, the reader tshark uses) must agree that the file's
    encapsulation is none of weir's (Ethernet, raw IP, SLL, SLL2, NULL,
    LOOP).  Any other refusal is a failure.
  - Outer headers only: tshark's fields are read with all occurrences and
    the first taken (what `-E occurrence=f` gives: ICMP errors' embedded
    headers and tunnels' inner headers are ignored), except for the IPv6
    extension walk, which takes the k-th occurrence of an extension's
    fields along frame.protocols.  Reassembly off (ip/ipv6.defragment) and
    ip.tso_support off, so ip.len is the header's value, not one tshark
    makes up for a total length of 0.
  - Cost: a tshark start (~0.35 s CPU) per file is nearly all of it.  By
    default (CI) weir runs on every file (~13 ms each, ~35 ms under ASan)
    and every refusal is checked (capinfos, ~5 ms), but tshark only on a
    fixed subset of the accepted files (ci_subset): the 118 exercising more
    than plain Ethernet (malformed frames, other link types, pcapng) first,
    then those with non-IP frames beside IP ones, then the rest, at most
    WEIR_CORPUS_MAX (default CI_MAX = 120); the others are reported
    `# SKIP`.  About 50 s CPU (~75 s under ASan), ~30-40 s on 2 idle
    cores.  WEIR_CORPUS_FULL=1 (or naming files after CORPUS_DIR) checks
    every accepted file (~110 s CPU).  Files run os.cpu_count() at a time.
"""
import collections
import concurrent.futures
import decimal
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

HEADER = "window_start_ms,window_end_ms,proto,src,sport,dst,dport,packets,bytes"
WINDOW = 1000
CI_MAX = 120  # accepted files checked against tshark without WEIR_CORPUS_FULL

# tshark fields, all occurrences (aggregated with ','): the first is the
# outer header's; the IPv6 extension walk needs the k-th occurrence.
FIELDS = [
    "frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols",
    "frame.encap_type",
    "ip.version", "ip.hdr_len", "ip.len", "ip.proto", "ip.src", "ip.dst",
    "ip.frag_offset", "ipv6.plen", "ipv6.nxt", "ipv6.src", "ipv6.dst",
    "ipv6.hopopts.nxt", "ipv6.hopopts.len_oct",
    "ipv6.routing.nxt", "ipv6.routing.len_oct",
    "ipv6.dstopts.nxt", "ipv6.dstopts.len_oct",
    "ipv6.fraghdr.nxt", "ipv6.fraghdr.offset",
    "ah.next_header", "ah.length",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
    "sctp.srcport", "sctp.dstport", "dccp.srcport", "dccp.dstport",
    "null.type", "eth.len", "vlan.len", "llc.dsap", "llc.ssap", "llc.control", "llc.type",
]
# Transport protocols whose first 4 bytes are the ports (net/parse.c
# ports_bitmap) and the tshark field prefix that carries them (UDP-Lite is
# dissected with the udp fields).
PORT_FIELDS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udp"}
# IPv6 extension headers weir walks: tshark layer -> (next field, length).
EXT_LAYERS = {
    "ipv6.hopopts": (0, "ipv6.hopopts.nxt", "ipv6.hopopts.len_oct"),
    "ipv6.routing": (43, "ipv6.routing.nxt", "ipv6.routing.len_oct"),
    "ipv6.dstopts": (60, "ipv6.dstopts.nxt", "ipv6.dstopts.len_oct"),
    "ipv6.fraghdr": (44, "ipv6.fraghdr.nxt", None),
    "ah": (51, "ah.next_header", "ah.length"),
}
EXT_NH = {0, 43, 44, 60, 51}
VLAN_TAGS_MAX = 4   # WEIR_PARSE_VLAN_TAGS_MAX
IPV6_EXT_MAX = 8    # WEIR_PARSE_IPV6_EXT_MAX
# Wiretap encapsulation names (capinfos -E) of the link types weir reads.
WEIR_ENCAPS = {"ether", "rawip", "rawip4", "rawip6", "linux-sll",
               "linux-sll2", "null", "loop"}

# The rules: why a frame's verdict or key differs from tshark's plain view.
# name -> where docs/net.md states it.
RULES = {
    "link-cut": "net.md: MALFORMED - any key header cut by caplen "
                "(the link header, every VLAN tag, an 802.3 frame's "
                "LLC/SNAP header)",
    "not-decapsulated": "net.md: NON_IP - MPLS, PPPoE, MACsec, NSH, vendor "
                        "headers ... no decapsulation",
    "null-ethertype": "net.md: NULL/LOOP - the AF values; others NON_IP "
                      "(tshark also takes an ethertype there)",
    "vlan-tags>4": "net.md: more than 4 VLAN tags ... MALFORMED",
    "version-mismatch": "net.md: wrong version nibble (also ... link type "
                        "saying IPv4 and the header saying 6)",
    "ip-header-cut": "net.md: any key header cut by caplen (the whole IPv4 "
                     "header including options / IPv6 fixed header)",
    "ihl<5": "net.md: IHL < 5",
    "ipv4-len0": "net.md: IPv4 total length 0 (TSO/BIG TCP) is MALFORMED",
    "ipv6-plen0": "net.md: IPv6 payload length 0 with any next header but "
                  "59 ... MALFORMED",
    "len<ihl": "net.md: total length < IHL*4",
    "ip-len>wire": "net.md: an IP length claiming more than the frame had "
                   "on the wire",
    "ports-cut": "net.md: a snaplen that cuts a TCP first fragment before "
                 "its ports ... MALFORMED",
    "ports-outside-ip": "net.md: transport ports outside the IP datagram",
    "ext-cut": "net.md: each extension header's first 8 bytes are key "
               "headers (cut: MALFORMED)",
    "ext-past-payload": "net.md: an extension header that runs past the "
                        "IPv6 payload",
    "ext>8": "net.md: more than 8 IPv6 extension headers: MALFORMED",
    "spb-time-0": "net.md: SPB (interface 0, ..., ts_ns = 0)",
    "ts-fraction-carry": "net.md: a classic record's fraction out of range "
                         "is taken at face value (carries into seconds)",
}


class Frame:
    """One line of tshark output: field name -> list of occurrences."""

    def __init__(self, line):
        vals = line.split("\t")
        self.f = {}
        for name, v in zip(FIELDS, vals):
            self.f[name] = v.split(",") if v else []

    def first(self, name, conv=str):
        v = self.f.get(name)
        return conv(v[0]) if v else None

    def nth(self, name, k, conv=int):
        v = self.f.get(name, [])
        return conv(v[k]) if k < len(v) else None


def addr_text(packed):
    """docs/flows.md "Address text": RFC 5952, mixed notation only for
    IPv4-mapped."""
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    if packed[:12] == bytes(10) + b"\xff\xff":
        return "::ffff:" + str(ipaddress.IPv4Address(packed[12:]))
    return ipaddress.IPv6Address(packed).compressed


class Verdict:
    def __init__(self, kind, rule=None, key=None, nbytes=0):
        self.kind, self.rule, self.key, self.nbytes = kind, rule, key, nbytes


def bad(rule):
    return Verdict("malformed", rule)


def link_prefix(protos):
    """Split tshark's layer list at the outer IP header: returns (layers
    before it, 'ip'/'ipv6'/None, index of the IP layer)."""
    for i, p in enumerate(protos):
        if p in ("ip", "ipv6"):
            return protos[:i], p, i
    return protos, None, len(protos)


# Wiretap encapsulation (frame.encap_type) of weir's link types ->
# (tshark's first layer, link header bytes): Ethernet, raw IP (DLT 12, 14,
# 101), NULL, LOOP, SLL, SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6.
ENCAPS = {
    1: ("eth", 14), 7: ("raw", 0), 15: ("null", 4), 174: ("null", 4),
    25: ("sll", 16), 210: ("sll", 20), 129: (None, 0), 130: (None, 0),
}
VLAN_LAYERS = ("vlan", "ieee8021ad")


def hexint(v):
    return int(v, 0)


def is_snap(fr):
    llc = (fr.first("llc.dsap", hexint), fr.first("llc.ssap", hexint),
           fr.first("llc.control", hexint))
    return llc == (0xaa, 0xaa, 3)


def link_check(encap, layers, fr, cap):
    """weir's link-layer rules along tshark's layers (docs/net.md: the link
    header, every VLAN tag and an 802.3 frame's LLC/SNAP header are key
    headers; at most 4 tags): a Verdict, or None if the link layer is
    whole."""
    first, off = ENCAPS[encap]
    if cap < max(off, 1):
        return bad("link-cut")
    if first not in ("eth", "sll"):
        return None
    tags, llc = 0, False
    for p in layers[1:]:
        if p in VLAN_LAYERS:
            tags += 1
            if tags > VLAN_TAGS_MAX:
                return bad("vlan-tags>4")
            off += 4
        elif p == "llc" and first == "eth" and not llc:
            llc = True  # 802.3: the LLC bytes decide, SNAP is 8 bytes
            off += 8 if off + 3 <= cap and is_snap(fr) else 3
        elif p != "ethertype":
            break
        if off > cap:
            return bad("link-cut")
    dot3 = fr.first("eth.len") is not None or fr.first("vlan.len") is not None
    if first == "eth" and dot3 and not llc and off + 3 > cap:
        return bad("link-cut")  # 802.3 cut before tshark saw any LLC byte
    return None


# Layers tshark decapsulates before an IP header and weir does not
# (docs/net.md "NON_IP": the ethertype is neither IPv4, IPv6 nor a VLAN
# tag).  Any other layer there is unexplained.
NOT_DECAPSULATED = {"mpls", "pppoes", "ppp", "macsec", "avsp", "nsh",
                    "ieee8021ah", "eth", "gre", "erspan", "cfm"}


def l3_offset(encap, link, fr):
    """Offset of the outer IP header along weir's path (tshark's layers
    before it), or a Verdict if weir does not follow tshark's path there."""
    first, off = ENCAPS[encap]
    layers = [p for p in link if p != "ethertype"]
    if first is not None:
        if not layers or layers[0] != first:
            return Verdict("unexplained", f"link layers {link}")
        layers = layers[1:]
    if first == "null" and fr.first("null.type") is not None:
        return Verdict("non_ip", "null-ethertype")
    for p in layers:
        if p in VLAN_LAYERS:
            off += 4
        elif p == "llc" and first == "eth" and fr.first("llc.type"):
            off += 8  # 802.3 + LLC/SNAP with an ethertype
        elif p in NOT_DECAPSULATED or p == "llc":
            return Verdict("non_ip", "not-decapsulated")
        else:
            return Verdict("unexplained", f"link layers {link}")
    return off


def ports_of(fr, proto, l4, cap, end):
    """(sport, dport) for proto at l4, or a Verdict."""
    if proto not in PORT_FIELDS:
        return (0, 0)
    if l4 + 4 > cap:
        return bad("ports-cut")
    if l4 + 4 > end:
        return bad("ports-outside-ip")
    pre = PORT_FIELDS[proto]
    sp, dp = fr.first(pre + ".srcport", int), fr.first(pre + ".dstport", int)
    if sp is None or dp is None:
        return Verdict("unexplained", f"tshark has no {pre} ports")
    return (sp, dp)


def model_ipv4(fr, l3, cap, wire):
    if l3 + 20 > cap:
        return bad("ip-header-cut")
    hl, ln = fr.first("ip.hdr_len", int), fr.first("ip.len", int)
    if hl is not None and hl < 20:
        return bad("ihl<5")  # tshark stops before the length
    if hl is None or ln is None:
        return Verdict("unexplained", "tshark has no ip.hdr_len/ip.len")
    if ln == 0:
        return bad("ipv4-len0")
    if ln < hl:
        return bad("len<ihl")
    if l3 + hl > cap:
        return bad("ip-header-cut")
    if l3 + ln > wire:
        return bad("ip-len>wire")
    proto = fr.first("ip.proto", int)
    later = (fr.first("ip.frag_offset", int) or 0) != 0
    ports = (0, 0) if later else ports_of(fr, proto, l3 + hl, cap, l3 + ln)
    if isinstance(ports, Verdict):
        return ports
    src = ipaddress.IPv4Address(fr.first("ip.src")).packed
    dst = ipaddress.IPv4Address(fr.first("ip.dst")).packed
    return Verdict("ok", key=(proto, addr_text(src), ports[0],
                              addr_text(dst), ports[1]), nbytes=ln)


def ipv6_chain(fr, protos, at, h, end, cap):
    """Walk the outer IPv6 extension chain as weir does, with tshark's
    fields.  Returns (proto, l4 offset, later fragment) or a Verdict."""
    nh = fr.first("ipv6.nxt", int)
    seen = collections.Counter()
    later = False
    n = 0
    i = at + 1
    while nh in EXT_NH:
        if n == IPV6_EXT_MAX:
            return bad("ext>8")
        if h + 8 > cap:
            return bad("ext-cut")
        if h + 8 > end:
            return bad("ext-past-payload")
        layer = protos[i] if i < len(protos) else None
        if layer not in EXT_LAYERS or EXT_LAYERS[layer][0] != nh:
            return Verdict("unexplained",
                           f"extension {nh} at {h}: tshark shows {layer}")
        _, nxt_f, len_f = EXT_LAYERS[layer]
        k = seen[layer]
        seen[layer] += 1
        nxt = fr.nth(nxt_f, k)
        if layer == "ipv6.fraghdr":
            later = (fr.nth("ipv6.fraghdr.offset", k) or 0) != 0
            size = 8
        else:
            size = fr.nth(len_f, k)
            if layer == "ah" and size is not None:
                size = (size + 2) * 4  # AH: 4-byte units, minus 2
        if nxt is None or size is None:
            return Verdict("unexplained", f"tshark has no {layer} fields")
        h += size
        nh = nxt
        n += 1
        i += 1
        if later:
            break
    if h > end:
        return bad("ext-past-payload")
    return nh, h, later


def model_ipv6(fr, protos, at, l3, cap, wire):
    if l3 + 40 > cap:
        return bad("ip-header-cut")
    plen = fr.first("ipv6.plen", int)
    if plen == 0 and fr.first("ipv6.nxt", int) != 59:
        return bad("ipv6-plen0")
    end = l3 + 40 + plen
    if end > wire:
        return bad("ip-len>wire")
    r = ipv6_chain(fr, protos, at, l3 + 40, end, cap)
    if isinstance(r, Verdict):
        return r
    proto, l4, later = r
    ports = (0, 0) if later else ports_of(fr, proto, l4, cap, end)
    if isinstance(ports, Verdict):
        return ports
    src = ipaddress.IPv6Address(fr.first("ipv6.src")).packed
    dst = ipaddress.IPv6Address(fr.first("ipv6.dst")).packed
    return Verdict("ok", key=(proto, addr_text(src), ports[0],
                              addr_text(dst), ports[1]), nbytes=plen + 40)


def model_frame(fr):
    protos = (fr.first("frame.protocols") or "").split(":")
    cap = fr.first("frame.cap_len", int)
    wire = max(cap, fr.first("frame.len", int))
    encap = fr.first("frame.encap_type", int)
    if encap not in ENCAPS:
        return Verdict("unsupported")
    link, ipl, at = link_prefix(protos)
    v = link_check(encap, link, fr, cap)
    if v is not None:
        return v
    if ipl is None:
        if ENCAPS[encap][0] in (None, "raw"):
            return bad("version-mismatch")  # raw IP, version not 4/6
        return Verdict("non_ip")
    l3 = l3_offset(encap, link, fr)
    if isinstance(l3, Verdict):
        return l3
    version = fr.first("ip.version", int)
    want = {"ip": 4, "ipv6": 6}[ipl]
    if version is not None and version != want:
        return bad("version-mismatch")
    if ipl == "ip":
        return model_ipv4(fr, l3, cap, wire)
    return model_ipv6(fr, protos, at, l3, cap, wire)


def ts_ms(epoch):
    """tshark's frame.time_epoch in ms (None if unparsable)."""
    try:
        return int(decimal.Decimal(epoch) * 1000 // 1)
    except decimal.InvalidOperation:
        return None


def classic_times(path):
    """Per record of a classic pcap file: (time in ns as weir reads it,
    whether the fraction is in range).  None for pcapng.  docs/net.md: a
    fraction >= 10^6 us (10^9 ns) is taken at face value, the excess
    carries into the seconds; tshark prints it unnormalised
    ("S.1000000000") and wraps us*1000 in 32 bits (to 0, or to a negative
    time), so for those records the model takes the header's fields."""
    with open(path, "rb") as f:
        b = f.read()
    for bo in ("little", "big"):
        magic = int.from_bytes(b[:4], bo)
        if magic in (0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34):
            break
    else:
        return None
    unit = 1 if magic == 0xa1b23c4d else 1000
    rec = 24 if magic == 0xa1b2cd34 else 16
    out, off = [], 24
    while off + rec <= len(b):
        sec = int.from_bytes(b[off:off + 4], bo)
        frac = int.from_bytes(b[off + 4:off + 8], bo)
        out.append((sec * 10**9 + frac * unit, frac * unit < 10**9))
        off += rec + int.from_bytes(b[off + 8:off + 12], bo)
    return out


class Model:
    def __init__(self, path):
        self.raw = classic_times(path)
        self.acc = collections.defaultdict(lambda: [0, 0])
        self.counts = collections.Counter()
        self.rules = collections.Counter()
        self.where = {}  # rule -> frame numbers
        self.unexplained = []

    def add(self, n, fr):
        if fr.first("frame.encap_type") is None:
            self.counts["record"] += 1  # a pcapng block wiretap shows as
            return                      # a record (unknown type): no packet
        v = model_frame(fr)
        if v.kind == "unexplained":
            self.unexplained.append(f"frame {n}: {v.rule}")
            return
        self.counts[v.kind] += 1
        if v.rule:
            self.rules[v.rule] += 1
            self.where.setdefault(v.rule, []).append(n)
        if v.kind != "ok":
            return
        ms = self.time_ms(n, fr.first("frame.time_epoch"))
        if ms is None:
            return
        start = ms // WINDOW * WINDOW
        a = self.acc[(start, start + WINDOW) + v.key]
        a[0] += 1
        a[1] += v.nbytes

    def time_ms(self, n, epoch):
        if epoch is None:  # a pcapng SPB has no time
            self.rules["spb-time-0"] += 1
            return 0
        ms = ts_ms(epoch)
        if self.raw is None:
            return ms
        if n > len(self.raw):
            self.unexplained.append(f"frame {n}: beyond the file's records")
            return None
        ns, in_range = self.raw[n - 1]
        if not in_range:
            self.rules["ts-fraction-carry"] += 1
            return ns // 10**6
        if ms != ns // 10**6:
            self.unexplained.append(f"frame {n}: tshark time {epoch}, "
                                    f"record header {ns} ns")
            return None
        return ms

    def rows(self):
        return sorted(",".join(map(str, k + tuple(v)))
                      for k, v in self.acc.items())


def run_tshark(path):
    cmd = ["tshark", "-n", "-r", path, "-o", "ip.defragment:FALSE",
           "-o", "ipv6.defragment:FALSE", "-o", "ip.tso_support:FALSE",
           "-T", "fields",
           "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       errors="replace")
    return r.stdout.splitlines(), r.stderr


def run_weir(weir, path, tmp):
    out = os.path.join(tmp, os.path.basename(path) + ".csv")
    r = subprocess.run([weir, "flows", "--pcap", path, "--cores", "1",
                        "--window", str(WINDOW), "--out", out],
                       capture_output=True, text=True, timeout=300)
    rows = None
    if r.returncode == 0:
        with open(out) as f:
            lines = f.read().splitlines()
        assert lines and lines[0] == HEADER, f"CSV header {lines[:1]!r}"
        rows = sorted(lines[1:])
    return r.returncode, r.stderr, rows


def summary(stderr):
    last = stderr.strip().splitlines()[-1]
    return {k: v for k, v in (kv.split("=", 1) for kv in last.split()
                              if "=" in kv)}


def compare(path, rows, stderr, frames, ts_err):
    m = Model(path)
    for n, line in enumerate(frames, 1):
        m.add(n, Frame(line))
    problems = list(m.unexplained[:5])
    if len(m.unexplained) > 5:
        problems.append(f"... {len(m.unexplained)} unexplained frames")
    want = m.rows()
    if not m.unexplained and rows != want:
        only_w = sorted((collections.Counter(rows) -
                         collections.Counter(want)).elements())
        only_t = sorted((collections.Counter(want) -
                         collections.Counter(rows)).elements())
        problems.append(f"rows: {len(only_w)} only in weir (e.g. "
                        f"{only_w[:2]}), {len(only_t)} only in the model "
                        f"(e.g. {only_t[:2]})")
    s = summary(stderr)
    cut = 1 if "cut short" in ts_err else 0
    expect = {"packets": m.counts["ok"] + m.counts["malformed"] +
              m.counts["non_ip"],
              "ip": m.counts["ok"],
              "malformed": m.counts["malformed"],
              "non_ip": m.counts["non_ip"],
              "unsupported": m.counts["unsupported"],
              "truncated": cut}
    if not m.unexplained:
        for k, v in expect.items():
            if int(s.get(k, -1)) != v:
                problems.append(f"{k}={s.get(k)} but tshark implies {v}")
    return problems, m


REFUSAL = re.compile(r"link type (\d+) \((\S+)\) is not supported$")


def check_refused(path, stderr):
    lines = stderr.strip().splitlines()
    if len(lines) != 1:
        return [f"refused with {len(lines)} stderr lines: {stderr!r}"], None
    m = REFUSAL.search(lines[0])
    if not m:
        return [f"refused: {lines[0]!r}"], None
    if m.group(2) == "unknown":  # every corpus link type is registered
        return [f"refusal does not name the link type: {lines[0]!r}"], None
    r = subprocess.run(["capinfos", "-T", "-m", "-E", "-r", path],
                       capture_output=True, text=True, timeout=60)
    lt = int(m.group(1))
    unknown = re.search(r"network type (\d+) unknown or unsupported",
                        r.stderr)
    if r.returncode != 0 and unknown and int(unknown.group(1)) & 0xffff == lt:
        # wiretap cannot read it at all (its bits 16-31 may carry FCS
        # information: weir names the low 16 bits, as libpcap does)
        return [], f"link type {lt} ({m.group(2)}): wiretap cannot read it"
    if r.returncode != 0:
        return [f"refused link type {lt}; capinfos: {r.stderr.strip()}"], None
    encaps = r.stdout.strip().splitlines()[-1].split(",", 1)[-1]
    if encaps == "per-packet":
        return check_refused_mixed(path, lt, m.group(2))
    if encaps in WEIR_ENCAPS:
        return [f"refused link type {lt} but wiretap says {encaps}"], None
    return [], f"link type {lt} ({m.group(2)}) = wiretap {encaps}"


def check_refused_mixed(path, lt, name):
    """A pcapng file with several link types is refused when every
    interface declared before its first packet is unsupported (docs/net.md
    "Capture reader"): that packet's must be one weir does not read."""
    r = subprocess.run(["tshark", "-n", "-r", path, "-c", "1", "-T",
                        "fields", "-e", "frame.encap_type"],
                       capture_output=True, text=True, timeout=60)
    first = r.stdout.strip()
    if not first or int(first) in ENCAPS:
        return [f"refused link type {lt}, first packet's wiretap "
                f"encapsulation {first or 'none'}"], None
    return [], (f"link type {lt} ({name}); mixed file, first packet on "
                f"wiretap encapsulation {first}")


def weir_phase(weir, path, tmp):
    """weir on one file; a refusal is checked at once (capinfos: ~5 ms)."""
    rc, err, rows = run_weir(weir, path, tmp)
    if rc == 2:
        problems, what = check_refused(path, err)
        return rc, err, rows, problems, "refused: " + (what or "")
    if rc != 0:
        return rc, err, rows, [f"weir exit {rc}: {err.strip()[-300:]}"], ""
    s = summary(err)
    info = (f"{len(rows)} rows, packets={s['packets']} ip={s['ip']} "
            f"malformed={s['malformed']} non_ip={s['non_ip']}")
    return rc, err, rows, [], info


def tshark_phase(path, rows, err):
    frames, ts_err = run_tshark(path)
    return compare(path, rows, err, frames, ts_err)


def encapsulation(path):
    r = subprocess.run(["capinfos", "-T", "-m", "-E", "-r", path],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip().splitlines()[-1].split(",", 1)[-1]


def ci_subset(d, accepted):
    """The accepted files tshark checks without WEIR_CORPUS_FULL, in tiers:
    0 malformed frames, another link type than Ethernet, or pcapng (118 of
    419); 1 non-IP frames beside IP ones (18); 2 the rest; each tier in a
    fixed pseudo-random order (crc32 of the name); at most
    WEIR_CORPUS_MAX (default CI_MAX)."""
    def rank(item):
        f, err = item
        s = summary(err)
        if (int(s["malformed"]) > 0 or f.endswith(".pcapng") or
                encapsulation(os.path.join(d, f)) != "ether"):
            tier = 0
        elif int(s["non_ip"]) > 0 and int(s["ip"]) > 0:
            tier = 1
        else:
            tier = 2
        return (tier, zlib.crc32(f.encode()))
    cap = int(os.environ.get("WEIR_CORPUS_MAX", CI_MAX))
    return {f for f, _ in sorted(accepted.items(), key=rank)[:cap]}


def corpus_dir():
    if len(sys.argv) > 2:
        return sys.argv[2]
    if os.environ.get("WEIR_CORPUS_DIR"):
        d = os.environ["WEIR_CORPUS_DIR"]
        sub = os.path.join(d, "tcpdump")
        return sub if os.path.isdir(sub) else d
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "shared",
                                         "corpus", "tcpdump"))


def skip_all(d):
    missing = [t for t in ("tshark", "capinfos") if shutil.which(t) is None]
    if not os.path.isdir(d):
        return f"corpus not found at {d} (WEIR_CORPUS_DIR)"
    if missing:
        return (f"{' and '.join(missing)} not installed (apt-get install "
                f"tshark)")
    return None


def report_rules(rules, rule_files):
    for r, n in sorted(rules.items()):
        fl = rule_files[r]
        print(f"# rule {r}: {n} frames in {len(fl)} files (e.g. {fl[0]}) "
              f"-- {RULES[r]}")


def main():
    weir = sys.argv[1]
    d = corpus_dir()
    why = skip_all(d)
    if why:
        print(f"1..0 # SKIP {why}")
        return 0
    files = sys.argv[3:] or sorted(f for f in os.listdir(d)
                                   if f.endswith((".pcap", ".pcapng")))
    full = bool(os.environ.get("WEIR_CORPUS_FULL")) or len(sys.argv) > 3
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        first = dict(zip(files, ex.map(
            lambda f: weir_phase(weir, os.path.join(d, f), tmp), files)))
        t1 = time.monotonic()
        accepted = {f: r[1] for f, r in first.items() if r[0] == 0}
        chosen = set(accepted) if full else ci_subset(d, accepted)
        todo = sorted(chosen)
        second = dict(zip(todo, ex.map(
            lambda f: tshark_phase(os.path.join(d, f), first[f][2],
                                   first[f][1]), todo)))
    rules, rule_files = collections.Counter(), {}
    failed = 0
    print(f"1..{len(files)}")
    for i, f in enumerate(files, 1):
        rc, _, _, problems, info = first[f]
        skip = ""
        if rc == 0 and f not in chosen:
            skip = " # SKIP not in the CI subset (WEIR_CORPUS_FULL=1)"
        elif rc == 0:
            problems, m = second[f]
            for r, n in m.rules.items():
                rules[r] += n
                rule_files.setdefault(r, []).append(f)
            if os.environ.get("WEIR_CORPUS_VERBOSE"):
                for r, fl in sorted(m.where.items()):
                    print(f"# {f}: {r} frames {fl[:10]}")
        if problems:
            failed += 1
            print(f"not ok {i} {f}: " + "; ".join(problems))
        else:
            print(f"ok {i} {f}: {info}{skip}")
    report_rules(rules, rule_files)
    print(f"# {len(files)} files ({len(accepted)} accepted, {len(chosen)} "
          f"checked against tshark), {failed} with unexplained "
          f"discrepancies; weir phase {t1 - t0:.1f} s, tshark phase "
          f"{time.monotonic() - t1:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
