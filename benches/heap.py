#!/usr/bin/env python3
"""Where relay's heap goes: peak heap by module and bytes per series.

For each Pod size, the synthetic app (`relay demo --agent-only`) is
remote-written by `relay run` to the counting sink (examples/rw_sink.rs),
exactly as `benches/e2e.py --remote-write` runs it, but under heaptrack.
After the window relay is killed (so its record ends in steady state) and
heaptrack's peak list is read back (`heaptrack_print --print-peaks`):
every byte live at the peak is charged to the relay source file nearest
the allocation on its stack. Prints the
peak heap and, per module, MiB and bytes per series; then the two parts
issue 20 tracks: the series cache (`scrape::{cache,arena,slots,lookup}`)
and the queue's series (`remote_write::series`, and the watcher's table of
them).

With --served, /metrics is also fetched every interval, as a central
Prometheus does. Needs `heaptrack` (Debian package heaptrack) and a release
build (`cargo build --release --bins --example rw_sink`, or RELAY_BIN and
RW_SINK_BIN). Everything listens on 127.0.0.1.

    python3 benches/heap.py --sizes 10k,100k          # ~3 min
    python3 benches/heap.py --sizes 1m --seconds 90   # ~4 min, ~1 GiB
    python3 benches/heap.py --sizes 100k --served
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

SERIES_CACHE = ("scrape::cache", "scrape::arena", "scrape::slots", "scrape::lookup")
QUEUE_SERIES = ("remote_write::series", "remote_write::queue::watcher")
MIB = 1024 * 1024


def size_of(text):
    """heaptrack's sizes: decimal units, as in `560.00K`."""
    match = re.fullmatch(r"([0-9.]+)([KMGT]?)B?", text)
    return float(match.group(1)) * 1000 ** " KMGT".index(match.group(2) or " ")


def module_of(path):
    """`src/scrape/cache.rs` -> `scrape::cache`; None for another crate's file."""
    if not path.startswith("src/") or not os.path.exists(os.path.join(e2e.ROOT, path)):
        return None
    parts = path[len("src/"):-len(".rs")].split("/")
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts) or "lib"


def charge(peaks):
    """Bytes live at the peak by the relay module nearest each allocation.

    heaptrack_print's peak list is flat: an allocation site ("peak memory
    consumed over ... from", its inlined frames) and then each stack that
    called it ("consumed over ... from:", innermost frame first). Paths of
    dependencies are relative too, so a path counts as relay's only if the
    file exists in this tree."""
    by_module = collections.Counter()
    site, stack, cost = [], None, 0.0

    def close():
        if stack is not None:
            module = next(filter(None, map(module_of, site + stack)), "(outside relay)")
            by_module[module] += cost

    for line in peaks.splitlines():
        head = re.match(r"^([0-9.]+[KMGT]?B?) (peak memory )?consumed over", line)
        if head:
            close()
            if head.group(2):
                site, stack = [], None
            else:
                stack, cost = [], size_of(head.group(1))
            continue
        at = re.match(r"^\s+at (\S+):\d+$", line)
        if at:
            (site if stack is None else stack).append(at.group(1))
    close()
    return by_module


def record(size, seconds, served, keep):
    series, interval = e2e.SIZES[size]
    d = tempfile.mkdtemp(prefix="relay-heap-")
    out = os.path.join(d, "heap")
    sink = e2e.Sink()
    fetching = threading.Event()
    try:
        with e2e.App(series) as app:
            port = e2e.free_port()
            peer = e2e.rw_peers(app.address, interval, sink.url)[0]
            argv = ["heaptrack", "-o", out] + peer.argv(d, port)
            with open(os.path.join(d, "heaptrack.log"), "w") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=d)
            if served:
                url = f"http://127.0.0.1:{port}/metrics"
                e2e.wait_for("relay's /metrics", lambda: e2e.get(url)[0] == 200)
                threading.Thread(
                    target=e2e.scrape_as_prometheus, args=(url, interval, fetching), daemon=True
                ).start()
            time.sleep(seconds)
            fetching.set()
            delivered = sink.stats()["samples"]
            # heaptrack runs relay (and its own interpreter) as children:
            # kill relay alone, then heaptrack writes its record out. Not a
            # SIGTERM: a shutdown drops the series cache and then flushes the
            # queues, and at a small Pod that can be the peak.
            children = subprocess.run(["pgrep", "-x", "-P", str(proc.pid), "relay"],
                                      capture_output=True, text=True).stdout.split()
            if not children:
                sys.exit(f"no relay process under heaptrack for {size}: see {d}/heaptrack.log")
            for pid in children:
                subprocess.run(["kill", "-KILL", pid])
            proc.wait(timeout=300)
            app_samples = app.samples
        files = [f for f in os.listdir(d) if f.startswith("heap") and f != "heaptrack.log"]
        if not files:
            sys.exit(f"heaptrack wrote nothing for {size}: see {d}/heaptrack.log")
        data = os.path.join(d, files[0])
        peaks = subprocess.run(
            ["heaptrack_print", "-f", data, "--print-peaks", "1", "--peak-limit", "1000000",
             "--sub-peak-limit", "1000000", "--print-allocators", "0", "--print-temporary", "0",
             "--print-leaks", "0", "--print-histogram", "0"],
            capture_output=True, text=True, check=True,
        ).stdout
        peak = re.search(r"peak heap memory consumption: ([0-9.]+[KMGT]?)", peaks)
        if not peak:
            sys.exit(f"heaptrack_print gave no peak for {size}: see {data}")
        return app_samples, delivered, size_of(peak.group(1)), charge(peaks)
    finally:
        fetching.set()
        e2e.stop(sink.proc)
        if keep:
            print(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


def report(size, app_samples, delivered, peak_bytes, by_module, top):
    total = sum(by_module.values())
    print(f"\n## {size}: {app_samples:,} series in the app, {delivered:,} samples delivered")
    print(f"peak heap {peak_bytes / MIB:.1f} MiB (heaptrack_print), "
          f"{total / MIB:.1f} MiB charged by stack, {peak_bytes / app_samples:.0f} B per series\n")
    print("| module | MiB at peak | B per series |")
    print("|---|---:|---:|")
    for module, cost in by_module.most_common(top):
        print(f"| {module} | {cost / MIB:.2f} | {cost / app_samples:.1f} |")
    for name, modules in (("series cache", SERIES_CACHE), ("queue's series", QUEUE_SERIES)):
        cost = sum(by_module[m] for m in modules)
        print(f"{name}: {cost / MIB:.2f} MiB, {cost / app_samples:.1f} B per series")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma-separated: 1k,10k,100k,1m")
    parser.add_argument("--seconds", type=float, default=60, help="window per size")
    parser.add_argument("--served", action="store_true", help="also GET /metrics every interval")
    parser.add_argument("--top", type=int, default=15, help="modules listed")
    parser.add_argument("--keep", action="store_true", help="keep heaptrack's files")
    args = parser.parse_args()
    if shutil.which("heaptrack") is None or shutil.which("heaptrack_print") is None:
        sys.exit("heaptrack is missing: apt-get install heaptrack")
    for path in (e2e.RELAY, e2e.SINK):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: cargo build --release --bins --example rw_sink")
    for size in args.sizes.split(","):
        if size not in e2e.SIZES:
            sys.exit(f"--sizes: unknown size {size!r} (one of {', '.join(e2e.SIZES)})")
        report(size, *record(size, args.seconds, args.served, args.keep), args.top)


if __name__ == "__main__":
    main()
