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
  samples of exposition seeds, plus truncated and bit-flipped copies.

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


if __name__ == "__main__":
    main()
