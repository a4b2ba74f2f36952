#!/usr/bin/env python3
"""Seeds each fuzz target's corpus from the project's own test tables.

    python3 fuzz/seed.py fuzz/corpus

writes fuzz/corpus/<target>/seed-<hash> files (existing files are kept, so
a corpus grown by earlier runs stays). Sources:

- exposition: the string literals of the exposition, scrape and parser
  tests and benches that hold an exposition (a line break and a number);
- relabel: each case of tests/relabel_cases.yaml, as its own YAML document;
- scrape: each case's rules as a job's metric_relabel_configs, with its
  input labels as a body, and the shipped configs with exposition seeds;
- config: config/*.yml, the relay configs inside k8s/*.yaml, the YAML in the
  config and web-config tests, and the relabel table;
- wal: segments written in the WAL's documented format from the series and
  samples of exposition seeds, plus truncated and bit-flipped copies;
- protobuf: delimited MetricFamily messages (client_model's field numbers,
  encoded here): the families of tests/protobuf.rs (exemplars, created
  timestamps, summaries, classic and native histograms with spans, zero and
  negative buckets), the counters, gauges and untyped samples of the
  exposition seeds, and truncated copies and an oversized length prefix.

Needs PyYAML (in the test venv: kubernetes-validate depends on it).
"""

import hashlib
import json
import pathlib
import re
import struct
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def rust_literals(path):
    """The string literals of a Rust file, unescaped (a small lexer that
    skips comments and char literals so stray quotes do not pair up)."""
    s = path.read_text(encoding="utf-8")
    out, i, n = [], 0, len(s)
    while i < n:
        c = s[i]
        if s.startswith("//", i):
            i = s.find("\n", i)
            i = n if i < 0 else i
            continue
        m = re.match(r'b?r(#*)"', s[i:])
        if m and (i == 0 or not (s[i - 1].isalnum() or s[i - 1] == "_")):
            end = '"' + m.group(1)
            j = s.find(end, i + len(m.group(0)))
            if j < 0:
                break
            out.append(s[i + len(m.group(0)):j])
            i = j + len(end)
            continue
        if c == "'":
            m = re.match(r"'(\\[^']{1,10}|[^'\\])'", s[i:])
            i += len(m.group(0)) if m else 1
            continue
        if c == '"':
            j, buf = i + 1, []
            while j < n and s[j] != '"':
                if s[j] == "\\":
                    j, piece = unescape_one(s, j)
                    buf.append(piece)
                else:
                    buf.append(s[j])
                    j += 1
            out.append("".join(buf))
            i = j + 1
            continue
        i += 1
    return out


def unescape_one(s, j):
    """The Rust escape at s[j] (a backslash): (index after it, its text)."""
    e = s[j + 1]
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    if e in simple:
        return j + 2, simple[e]
    if e == "x":
        return j + 4, chr(int(s[j + 2:j + 4], 16))
    if e == "u":
        k = s.index("}", j)
        return k + 1, chr(int(s[j + 3:k], 16))
    if e == "\n":
        k = j + 2
        while k < len(s) and s[k] in " \t\n":
            k += 1
        return k, ""
    return j + 2, "\\" + e


def to_bytes(text):
    # \xNN escapes of byte strings stand for bytes, not code points.
    return text.encode("latin-1") if all(ord(ch) < 256 for ch in text) else text.encode()


def exposition_seeds():
    # Globs, so that files moving around (lint.rs became lint/) keep seeding.
    patterns = [
        "tests/exposition*.rs", "tests/scrape.rs", "tests/prometheus_interop.rs",
        "tests/served_validity.rs", "src/exposition/**/*.rs", "src/scrape/*.rs",
        "benches/parse.rs",
    ]
    files = sorted({p.relative_to(ROOT) for pat in patterns for p in ROOT.glob(pat)})
    for f in files:
        path = ROOT / f
        if not path.exists():
            continue
        for lit in rust_literals(path):
            if "\n" in lit and re.search(r"\d", lit) and "scrape_configs" not in lit:
                yield to_bytes(lit)


def relabel_cases():
    table = yaml.safe_load((ROOT / "tests/relabel_cases.yaml").read_text())
    return table["cases"]


def relabel_seeds():
    for case in relabel_cases():
        doc = {"input": case.get("input", {}), "rules": case.get("rules", [])}
        yield yaml.safe_dump(doc, default_flow_style=None, allow_unicode=True).encode()


def sample_line(labels, value="1"):
    name = labels.get("__name__", "m")
    pairs = ",".join(
        '%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for k, v in labels.items() if k != "__name__"
    )
    return "%s{%s} %s\n" % (name, pairs, value) if pairs else "%s %s\n" % (name, value)


def job_config(rules, **job):
    config = {"scrape_configs": [dict(
        {"job_name": "app", "static_configs": [{"targets": ["localhost:8001"]}],
         "metric_relabel_configs": rules}, **job)]}
    return json.dumps(config).encode()


def scrape_seeds(expositions):
    for case in relabel_cases():
        if "error" in case:
            continue
        body = sample_line(case.get("input", {})).encode()
        yield job_config(case.get("rules", [])) + b"\0" + body
        yield job_config(case.get("rules", []), honor_labels=True) + b"\0" + body + b"\0" + body
    shipped = (ROOT / "config/relay.yml").read_bytes()
    for body in expositions[:40]:
        yield shipped + b"\0" + body
        yield job_config([], sample_limit=3, label_limit=4) + b"\0" + body + b"\0" + body[: len(body) // 2]


def config_seeds():
    for path in sorted((ROOT / "config").glob("*.yml")):
        yield path.read_bytes()
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                for value in (doc.get("data") or {}).values():
                    if "scrape_configs" in value or "relay:" in value:
                        yield value.encode()
    files = ["tests/config.rs", "tests/reload.rs", "tests/remote_write.rs", "tests/web.rs"]
    files += [str(p.relative_to(ROOT)) for p in ROOT.glob("src/config/*.rs")]
    files += [str(p.relative_to(ROOT)) for p in ROOT.glob("src/web/*.rs")]
    keys = r"scrape_configs|global|relay|remote_write|tls_server_config|basic_auth_users|http_server_config"
    for f in files:
        path = ROOT / f
        if path.exists():
            for lit in rust_literals(path):
                if re.search(r"^\s*(%s):" % keys, lit, re.M):
                    yield lit.encode()
    yield (ROOT / "tests/relabel_cases.yaml").read_bytes()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def record(kind, body):
    payload = bytes([kind]) + body
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def wal_seeds(expositions):
    for n, body in enumerate(expositions[:12]):
        lines = [l for l in body.split(b"\n") if l and not l.startswith(b"#")][:8]
        series = b"".join(varint(100 + k) + varint(len(l.split(b" ")[0])) + l.split(b" ")[0]
                          for k, l in enumerate(lines))
        samples, last = b"", 0
        for k in range(len(lines)):
            ts = 1_700_000_000_000 + 15_000 * k
            delta = ts - last
            samples += varint(100 + k) + varint((delta << 1) ^ (delta >> 63)) + struct.pack("<d", float(k))
            last = ts
        segment = record(1, series) + record(2, samples) + record(2, samples)
        yield segment
        yield segment[: len(segment) * 2 // 3]
        flipped = bytearray(segment)
        flipped[len(flipped) // 2] ^= 0x40
        yield bytes(flipped)
        yield segment + record(7, b"unknown type") + record(2, samples)
    yield struct.pack("<II", 60 << 20, 0) + b"\x02" + b"\0" * 16


def pb_key(field, wire):
    return varint((field << 3) | wire)


def pb_uint(field, v):
    return pb_key(field, 0) + varint(v & 0xFFFFFFFFFFFFFFFF)


def pb_sint(field, v):
    return pb_key(field, 0) + varint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def pb_double(field, v):
    return pb_key(field, 1) + struct.pack("<d", v)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return pb_key(field, 2) + varint(len(b)) + b


def pb_packed(field, values, signed):
    body = b"".join(varint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF) if signed
                    else struct.pack("<d", v) for v in values)
    return pb_bytes(field, body)


def pb_timestamp(ms):
    return pb_uint(1, ms // 1000) + pb_uint(2, (ms % 1000) * 1_000_000)


def pb_labels(labels):
    return b"".join(pb_bytes(1, pb_bytes(1, k) + pb_bytes(2, v)) for k, v in labels)


def pb_family(name, kind, metrics, help=""):
    """kind: 0 counter, 1 gauge, 2 summary, 3 untyped, 4 histogram."""
    body = pb_bytes(1, name) + (pb_bytes(2, help) if help else b"") + pb_uint(3, kind)
    body += b"".join(pb_bytes(4, m) for m in metrics)
    return varint(len(body)) + body


def pb_exemplar(trace, value, ms=None):
    e = pb_bytes(1, pb_bytes(1, "trace_id") + pb_bytes(2, trace)) + pb_double(2, value)
    return e + (pb_bytes(3, pb_timestamp(ms)) if ms is not None else b"")


def protobuf_families():
    """The kinds of tests/protobuf.rs's `families()`, one message each."""
    span = lambda offset, length: pb_sint(1, offset) + pb_uint(2, length)
    bucket = lambda le, count, ex=b"": pb_uint(1, count) + pb_double(2, le) + (pb_bytes(3, ex) if ex else b"")
    counter = (pb_double(1, 42.0) + pb_bytes(2, pb_exemplar("abc", 1.0, 1_700_000_000_250))
               + pb_bytes(3, pb_timestamp(1_700_000_000_000)))
    summary = (pb_uint(1, 5) + pb_double(2, 2.5) + pb_bytes(3, pb_double(1, 0.5) + pb_double(2, 0.4))
               + pb_bytes(3, pb_double(1, 0.99) + pb_double(2, 1.0)) + pb_bytes(4, pb_timestamp(1_600_000_000_000)))
    classic = (pb_uint(1, 6) + pb_double(2, 20.0) + pb_bytes(3, bucket(1.0, 2, pb_exemplar("b", 0.5)))
               + pb_bytes(3, bucket(10.0, 5)) + pb_bytes(15, pb_timestamp(1_600_000_000_500)))
    native_int = (pb_uint(1, 9) + pb_double(2, 4.5) + pb_sint(5, 0) + pb_double(6, 0.001) + pb_uint(7, 2)
                  + pb_bytes(9, span(-1, 1)) + pb_packed(10, [3], True) + pb_bytes(12, span(0, 2))
                  + pb_bytes(12, span(2, 1)) + pb_packed(13, [1, 1, -1], True))
    native_float = (pb_double(4, 5.5) + pb_double(2, 10.0) + pb_sint(5, 1) + pb_double(6, 0.01)
                    + pb_double(8, 0.5) + pb_bytes(12, span(1, 2)) + pb_packed(14, [2.0, 3.0], False))
    both = (pb_uint(1, 4) + pb_double(2, 3.0) + pb_bytes(3, bucket(0.5, 1)) + pb_bytes(3, bucket(1.0, 3))
            + pb_sint(5, 0) + pb_bytes(12, span(0, 2)) + pb_packed(13, [1, 2], True))
    metric = lambda labels, field, value, ts=None: (
        pb_labels(labels) + pb_bytes(field, value) + (pb_sint(6, ts) if ts else b""))
    return [
        pb_family("pt_requests_total", 0, [metric([("path", "/a")], 3, counter),
                                           metric([("path", "/b")], 3, pb_double(1, 1.0), 1_700_000_000_000)],
                  "Requests."),
        pb_family("pt_temp", 1, [metric([], 2, pb_double(1, 21.5))]),
        pb_family("pt_latency", 2, [metric([("k", "v")], 4, summary)]),
        pb_family("pt_untyped", 3, [metric([("a.b", "x")], 5, pb_double(1, -1.0))]),
        pb_family("pt_classic", 4, [metric([], 7, classic)]),
        pb_family("pt_native_int", 4, [metric([], 7, native_int)]),
        pb_family("pt_native_float", 4, [metric([], 7, native_float)]),
        pb_family("pt_both", 4, [metric([], 7, both)]),
        pb_family("pt.dotted_total", 0, [metric([("c.d", "1")], 3, pb_double(1, 2.0))]),
    ]


def protobuf_from_exposition(body):
    """The counters, gauges and untyped samples of a text exposition as
    protobuf families (other types, and lines this reads wrong, skipped)."""
    kinds = {"counter": (0, 3), "gauge": (1, 2), "untyped": (3, 5), "unknown": (3, 5)}
    types, families = {}, {}
    sample = re.compile(rb'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? +(\S+)')
    pair = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in body.split(b"\n"):
        if line.startswith(b"# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3].decode("latin-1")
            continue
        m = sample.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        kind = types.get(name, "untyped")
        if kind == "counter" or name.endswith(b"_total") and types.get(name[:-6]) == "counter":
            kind = "counter"
        if kind not in kinds:
            continue
        try:
            v = float(value)
        except ValueError:
            continue
        code, field = kinds[kind]
        pairs = [(k.decode("latin-1"), val.decode("latin-1")) for k, val in pair.findall(labels or b"")]
        families.setdefault((name, code), []).append(pb_labels(pairs) + pb_bytes(field, pb_double(1, v)))
    if not families:
        return b""
    return b"".join(pb_family(name.decode("latin-1"), code, metrics) for (name, code), metrics in families.items())


def protobuf_seeds(expositions):
    families = protobuf_families()
    yield b"".join(families)
    for f in families:
        yield f
        yield f[: len(f) // 2]
    for body in expositions[:200]:
        yield protobuf_from_exposition(body)
    # A length prefix claiming far more than the body holds.
    yield varint(1 << 40) + b"\x0a\x01m"


def write(corpus, target, seeds):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in seeds:
        if seed:
            (d / ("seed-" + hashlib.sha1(seed).hexdigest()[:16])).write_bytes(seed)
            count += 1
    print("%s: %d seeds" % (target, count), file=sys.stderr)


def main():
    corpus = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "fuzz/corpus")
    expositions = list(dict.fromkeys(exposition_seeds()))
    write(corpus, "exposition", expositions)
    write(corpus, "relabel", relabel_seeds())
    write(corpus, "scrape", scrape_seeds(expositions))
    write(corpus, "config", config_seeds())
    write(corpus, "wal", wal_seeds(expositions))
    write(corpus, "protobuf", protobuf_seeds(expositions))


if __name__ == "__main__":
    main()
