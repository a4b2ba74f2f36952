#!/usr/bin/env python3
"""End-to-end benchmark: relay against the scrapers it replaces, same app.

One synthetic app (`relay demo --agent-only --series N`) is scraped in turn by
each peer with the same scrape config, alone on the machine, for the same
window: relay (scrape + serve), Prometheus in server mode (the classic
"metrics sidecar" container), Prometheus in agent mode, and vmagent (whose
remote write goes to a local black hole that answers 204). The two that
serve the scraped data (relay's /metrics, Prometheus's /federate) are also
fetched once per interval during the window, with Prometheus's Accept and
Accept-Encoding headers, as the central Prometheus does. For each it prints CPU seconds used
in the window, resident memory (peak and at the end) and, for those that
serve, the latency of fetching all of it; then every peer's ratio to relay. Everything listens on 127.0.0.1; every process is stopped at the end.

With --mode remote-write (or --remote-write), the same app is instead shipped
by relay (with its WAL), Prometheus in agent mode and vmagent (stream
parsing) in turn to one counting sink (`examples/rw_sink.rs`, a Rust
receiver built from the project's own protobuf types, on one thread, its CPU
reported apart). The sink groups samples by timestamp, that is by scrape, so
the run proves no sample was lost (distinct series per scrape against the
app's), shows redelivered duplicates, and gives the delay from a scrape's
timestamp to the acknowledgement of its samples.

CPU is summed over all of a process's threads from the scheduler's
nanosecond counters, not clock ticks, so a small run does not read 0.00 s.

    python3 benches/e2e.py              # 100k series, 60 s window per peer
    python3 benches/e2e.py --quick      # 10k series, 10 s window (CI smoke run)
    python3 benches/e2e.py --mode remote-write [--quick] [--series N --interval S --window S]
"""

import argparse
import http.server
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAY = os.path.join(ROOT, "target", "release", "relay")
SINK = os.path.join(ROOT, "target", "release", "examples", "rw_sink")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What Prometheus 2.42 sends when it scrapes: OpenMetrics first (and gzip).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def get(url, timeout=30.0, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return r.status, r.read()


def scrape_as_prometheus(url, interval, stop):
    """The central Prometheus of the sidecar setup, fetching what is served."""
    while not stop.wait(interval):
        try:
            get(url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
        except OSError:
            pass


def wait_for(what, probe, deadline=120.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; index 11 and 12 after the ")".
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuMeter:
    """CPU time of a whole process, all its threads, in scheduler nanoseconds.

    Sums the first field of /proc/PID/task/*/schedstat. A thread that exits
    takes its counter with it, so a background poll keeps each thread's last
    reading every half second; the threads that come and go in these
    programs (tokio's blocking pool, Go's spare threads) exit after idling,
    so nothing they ran is missed. The tick-based figure of /proc/PID/stat,
    which counts exited threads but only in 10 ms steps, is kept to check.
    """

    def __init__(self, pid):
        self.pid = pid
        self.last, self.base = {}, {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self):
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            with self.lock:
                self.last[tid] = max(ns, self.last.get(tid, 0))

    def _run(self):
        while not self.done.wait(0.5):
            self._poll()

    def start(self):
        self._poll()
        self.base = dict(self.last)
        self.ticks = cpu_seconds(self.pid)
        self.thread.start()

    def stop(self):
        """(seconds from schedstat, seconds from clock ticks) since start."""
        self.done.set()
        self.thread.join()
        self._poll()
        ns = sum(v - self.base.get(tid, 0) for tid, v in self.last.items())
        return ns / 1e9, cpu_seconds(self.pid) - self.ticks


def memory_mib(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


class BlackHole(http.server.BaseHTTPRequestHandler):
    """A remote-write receiver that drops what it gets."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def scrape_config(agent, interval):
    return (
        f"global:\n  scrape_interval: {interval}s\n  scrape_timeout: {interval}s\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs:\n"
        f"      - targets: ['{agent}']\n"
    )


def peers(agent, interval, blackhole):
    """(name, argv builder, URL path serving the scraped data or None)."""
    config = scrape_config(agent, interval)

    def relay(d, port):
        path = os.path.join(d, "relay.yml")
        with open(path, "w") as f:
            f.write(config + f"relay:\n  listen_address: 127.0.0.1:{port}\n")
        return [RELAY, "run", "--config", path]

    def prometheus(mode):
        def argv(d, port):
            path = os.path.join(d, "prometheus.yml")
            with open(path, "w") as f:
                f.write(config)
            args = ["prometheus", f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}"]
            if mode == "agent":
                return args + ["--enable-feature=agent", f"--storage.agent.path={d}/data"]
            return args + [f"--storage.tsdb.path={d}/data"]

        return argv

    def vmagent(d, port):
        path = os.path.join(d, "scrape.yml")
        with open(path, "w") as f:
            f.write(config)
        return [
            "vmagent",
            f"-promscrape.config={path}",
            f"-remoteWrite.url=http://{blackhole}/api/v1/write",
            f"-remoteWrite.tmpDataPath={d}/data",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR",
        ]

    federate = "/federate?match%5B%5D=%7Bjob%3D%22app%22%7D"
    return [
        ("relay", relay, "/metrics", None),
        ("prometheus (server)", prometheus("server"), federate, "prometheus"),
        ("prometheus (agent)", prometheus("agent"), None, "prometheus"),
        ("vmagent", vmagent, None, "vmagent"),
    ]


def measure(name, argv, serve_path, agent, interval, window, requests):
    d = tempfile.mkdtemp(prefix="relay-e2e-")
    port = free_port()
    proc = subprocess.Popen(
        argv(d, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d
    )
    try:
        # Warm up: two scrapes of the app, so caches and series are in place.
        time.sleep(2 * interval + 1)
        if proc.poll() is not None:
            sys.exit(f"{name} exited early with {proc.returncode}")
        # Peers that serve the data are also fetched once per interval, as
        # the central Prometheus does in the sidecar setup: that is CPU too.
        stop = threading.Event()
        if serve_path:
            url = f"http://127.0.0.1:{port}{serve_path}"
            threading.Thread(
                target=scrape_as_prometheus, args=(url, interval, stop), daemon=True
            ).start()
        meter = CpuMeter(proc.pid)
        meter.start()
        time.sleep(window)
        cpu, _ = meter.stop()
        stop.set()
        peak, rss = memory_mib(proc.pid)
        latencies, size = [], 0
        if serve_path:
            url = f"http://127.0.0.1:{port}{serve_path}"
            wait_for(f"{name} to serve the app's series", lambda: len(get(url)[1]) > 1000)
            for _ in range(requests):
                start = time.perf_counter()
                size = len(get(url)[1])
                latencies.append((time.perf_counter() - start) * 1000)
        return {
            "cpu": cpu,
            "cpu_per_scrape": cpu / (window / interval),
            "peak": peak,
            "rss": rss,
            "p50": statistics.median(latencies) if latencies else None,
            "size": size,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def stop(proc, timeout=30):
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- remote write

# Series a shipper adds to every scrape of a target, as Prometheus does: up,
# scrape_duration_seconds, scrape_samples_scraped,
# scrape_samples_post_metric_relabeling and scrape_series_added; vmagent
# 1.79 adds scrape_timeout_seconds too.
PROMETHEUS_AUTO_SERIES = 5
VMAGENT_AUTO_SERIES = 6
RW_PEERS = ("relay", "prometheus", "vmagent")


class Sink:
    """The counting receiver, examples/rw_sink.rs."""

    def __init__(self):
        self.proc = subprocess.Popen([SINK, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            stop(self.proc)
            sys.exit(f"rw_sink did not start (said {line!r})")
        self.address = line.split()[-1]
        self.url = f"http://{self.address}/api/v1/write"

    def stats(self):
        return json.loads(get(f"http://{self.address}/stats")[1])

    def reset(self):
        request = urllib.request.Request(f"http://{self.address}/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=30).close()


def rw_peers(agent, interval, sink_url):
    """(name, argv builder, binary needed, series it adds per scrape)."""
    scrape = scrape_config(agent, interval)
    remote_write = f"remote_write:\n  - url: {sink_url}\n    name: sink\n"

    def relay(d, port):
        path = os.path.join(d, "relay.yml")
        with open(path, "w") as f:
            f.write(
                scrape + remote_write
                + f"relay:\n  listen_address: 127.0.0.1:{port}\n  wal_dir: {d}/wal\n"
            )
        return [RELAY, "run", "--config", path]

    def prometheus_agent(d, port):
        path = os.path.join(d, "prometheus.yml")
        with open(path, "w") as f:
            f.write(scrape + remote_write)
        return [
            "prometheus",
            "--enable-feature=agent",
            f"--config.file={path}",
            f"--storage.agent.path={d}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    def vmagent(d, port):
        path = os.path.join(d, "scrape.yml")
        with open(path, "w") as f:
            f.write(scrape)
        return [
            "vmagent",
            f"-promscrape.config={path}",
            f"-remoteWrite.url={sink_url}",
            "-promscrape.streamParse=true",
            "-promscrape.maxScrapeSize=1GB",
            f"-remoteWrite.tmpDataPath={d}/data",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR",
        ]

    return [
        ("relay", relay, RELAY, PROMETHEUS_AUTO_SERIES),
        ("Prometheus agent", prometheus_agent, "prometheus", PROMETHEUS_AUTO_SERIES),
        ("vmagent (streamParse)", vmagent, "vmagent", VMAGENT_AUTO_SERIES),
    ]


def percentile(histogram, q):
    """The q-quantile of a [(value, count)] histogram (sorted by value)."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    rank, seen = q * total, 0
    for value, n in histogram:
        seen += n
        if seen >= rank:
            return value
    return histogram[-1][0]


def scrapes_in_window(stats, t0, t1, interval, expected):
    """What the sink holds of the scrapes the window covers.

    Samples are grouped by timestamp, one group per scrape. The scrapes
    expected are those whose slot (phase + k × interval, the phase taken from
    a full group) falls in [t0, t1), so a scrape lost entirely counts as
    missing too. Groups off every slot (staleness markers at shutdown) are
    not scrapes and are left out.
    """
    groups = stats["timestamps"]
    inside = [g for g in groups if t0 * 1000 <= g["ts"] < t1 * 1000]
    if not inside:
        return None
    period = interval * 1000
    phase = max(inside, key=lambda g: g["distinct"])["ts"]
    first = math.ceil((t0 * 1000 - phase) / period)
    last = math.ceil((t1 * 1000 - phase) / period) - 1
    slots = {k: [] for k in range(first, last + 1)}
    for g in groups:
        k = round((g["ts"] - phase) / period)
        if k in slots and abs(g["ts"] - phase - k * period) < period / 4:
            slots[k].append(g)
    latency, complete = {}, []
    delivered = samples = missing = extra = 0
    for members in slots.values():
        distinct = sum(g["distinct"] for g in members)
        delivered += distinct
        missing += max(0, expected - distinct)
        extra += max(0, distinct - expected)
        samples += sum(g["samples"] for g in members)
        slowest = None
        for g in members:
            for ms, n in g["latency_ms"]:
                latency[ms] = latency.get(ms, 0) + n
                slowest = ms if slowest is None else max(slowest, ms)
        if slowest is not None:
            complete.append(slowest)
    histogram = sorted(latency.items())
    return {
        "scrapes": len(slots),
        "expected": expected * len(slots),
        "delivered": delivered,
        "missing": missing,
        "extra": extra,
        "duplicates": samples - delivered,
        "ack_p50": percentile(histogram, 0.5),
        "ack_p99": percentile(histogram, 0.99),
        "ack_max": histogram[-1][0] if histogram else None,
        "complete_p50": statistics.median(complete) if complete else None,
        "complete_max": max(complete) if complete else None,
    }


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


def measure_rw(argv, sink, expected, interval, window):
    """Ships the app to the sink with one peer; None and a reason if it fails."""
    d = tempfile.mkdtemp(prefix="relay-e2e-rw-")
    port = free_port()
    sink.reset()
    log_path = os.path.join(d, "stderr.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv(d, port), stdout=log, stderr=log, cwd=d)
    try:
        # Warm up: two scrapes, and samples arriving at the sink.
        time.sleep(2 * interval + 1)
        deadline = time.monotonic() + 60
        while proc.poll() is None and sink.stats()["samples"] == 0:
            if time.monotonic() > deadline:
                return None, "nothing reached the sink in the warm-up: " + tail(log_path)
            time.sleep(0.5)
        if proc.poll() is not None:
            return None, f"exited early with {proc.returncode}: " + tail(log_path)
        peer_cpu, sink_cpu = CpuMeter(proc.pid), CpuMeter(sink.proc.pid)
        before = sink.stats()
        t0 = time.time()
        peer_cpu.start()
        sink_cpu.start()
        time.sleep(window)
        cpu, cpu_ticks = peer_cpu.stop()
        sink_seconds, _ = sink_cpu.stop()
        t1 = time.time()
        after = sink.stats()
        peak, rss = memory_mib(proc.pid)
        # The window's last scrapes may still be on their way (batch
        # deadlines, retries): wait until every scrape is complete, or give up
        # after an interval and 20 s more and count what is missing.
        deadline = time.monotonic() + interval + 20
        while True:
            final = sink.stats()
            result = scrapes_in_window(final, t0, t1, interval, expected)
            if (result and result["missing"] == 0) or time.monotonic() > deadline:
                break
            time.sleep(1)
        if result is None:
            return None, "no scrape of the window reached the sink: " + tail(log_path)
        result.update(
            cpu=cpu,
            cpu_ticks=cpu_ticks,
            sink_cpu=sink_seconds,
            peak=peak,
            rss=rss,
            rate=(after["samples"] - before["samples"]) / (t1 - t0),
            stale=final["stale"],
            out_of_order=final["out_of_order"],
            rejected=final["rejected"],
            max_per_scrape=max((g["distinct"] for g in final["timestamps"]), default=0),
        )
        return result, None
    finally:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


def ms(value):
    return "—" if value is None else f"{value:,.0f} ms"


def remote_write_mode(series, interval, window, build=True, only=RW_PEERS):
    if build:
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--bins", "--example", "rw_sink"],
            cwd=ROOT,
            check=True,
        )
    missing = [b for b in ("prometheus", "vmagent") if shutil.which(b) is None]
    if missing and os.environ.get("CI") == "true":
        sys.exit(f"missing peers under CI=true: {missing} (./scripts/test installs them)")

    agent = f"127.0.0.1:{free_port()}"
    app = subprocess.Popen(
        [RELAY, "demo", "--agent-only", "--series", str(series), "--agent-address", agent],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sink = None
    try:
        sink = Sink()
        wait_for("the synthetic app", lambda: get(f"http://{agent}/metrics")[0] == 200)
        body = get(f"http://{agent}/metrics")[1]
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"app: {samples} samples (and each shipper's up and scrape_* series), "
            f"{len(body) / 1e6:.1f} MB; scrape every {interval}s; remote write to "
            f"rw_sink; {window:.0f}s measured per peer after a warm-up of two scrapes",
            flush=True,
        )
        results, failures = {}, {}
        for name, argv, binary, auto in rw_peers(agent, interval, sink.url):
            if os.path.basename(binary) not in only:
                continue
            if shutil.which(binary) is None:
                failures[name] = f"skipped: {binary} not installed"
                continue
            result, failure = measure_rw(argv, sink, samples + auto, interval, window)
            if result is None:
                failures[name] = failure
                print(f"{name}: {failure}", flush=True)
                continue
            results[name] = result
            r = result
            print(
                f"{name}: CPU {r['cpu']:.2f} s, {r['delivered']}/{r['expected']} samples"
                f" of {r['scrapes']} scrapes, ack p99 {ms(r['ack_p99'])}",
                flush=True,
            )
            if abs(r["cpu"] - r["cpu_ticks"]) > 0.05 + 0.05 * r["cpu"]:
                print(
                    f"  note: clock ticks say {r['cpu_ticks']:.2f} s "
                    "(threads may have exited while running)"
                )
        print_rw_table(results, failures, interval, window)
    finally:
        if sink:
            stop(sink.proc)
        stop(app)


def print_rw_table(results, failures, interval, window):
    print(
        f"\n| peer | CPU in {window:.0f} s | per scrape | RSS peak | RSS end | samples/s "
        "| delivered / expected | missing | duplicates | ack p50 | ack p99 "
        "| scrape fully acked p50 / max | sink CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['cpu']:.2f} s | {r['cpu'] / (window / interval) * 1000:.1f} ms "
            f"| {r['peak']:.1f} MiB | {r['rss']:.1f} MiB | {r['rate']:,.0f} "
            f"| {r['delivered']:,} / {r['expected']:,} ({r['scrapes']} scrapes) "
            f"| {r['missing']:,} | {r['duplicates']:,} | {ms(r['ack_p50'])} | {ms(r['ack_p99'])} "
            f"| {ms(r['complete_p50'])} / {ms(r['complete_max'])} | {r['sink_cpu']:.2f} s |"
        )
    for name, why in failures.items():
        print(f"| {name} | {why.splitlines()[0] if why else ''} |")
    print(
        "\nRSS peak is VmHWM, over the whole run (warm-up included); ack is the sink's "
        "acknowledgement time minus the sample's timestamp (the scrape's start); "
        "'scrape fully acked' is that for a scrape's last sample."
    )
    odd = [
        f"{name}: {r['out_of_order']} samples out of order, {r['rejected']} requests "
        f"rejected, {r['stale']} stale markers, {r['extra']} samples beyond the series "
        f"expected ({r['max_per_scrape']} series in the largest scrape)"
        for name, r in results.items()
        if r["out_of_order"] or r["rejected"] or r["stale"] or r["extra"]
    ]
    for line in odd:
        print("note: " + line)
    base = results.get("relay")
    if base and len(results) > 1:
        print("\n| relay ÷ peer | CPU | peak RSS |\n|---|---|---|")
        for name, r in results.items():
            if name != "relay":
                cpu, peak = base["cpu"] / max(r["cpu"], 1e-9), base["peak"] / r["peak"]
                print(f"| {name} | {cpu:.2f}× (1/{1 / max(cpu, 1e-9):.1f}) "
                      f"| {peak:.2f}× (1/{1 / peak:.1f}) |")


def main():
    # A SIGTERM ends the run like Ctrl-C does: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mode",
        choices=("serve", "remote-write"),
        default="serve",
        help="what the peers do with the scraped data (default: serve)",
    )
    parser.add_argument(
        "--remote-write", action="store_true", help="the same as --mode remote-write"
    )
    parser.add_argument("--quick", action="store_true", help="10k series, 10 s window")
    parser.add_argument("--series", type=int)
    parser.add_argument("--window", type=float, help="seconds measured per peer")
    parser.add_argument("--interval", type=int, default=5, help="scrape interval, seconds")
    parser.add_argument(
        "--peers",
        default=",".join(RW_PEERS),
        help="remote-write mode: which shippers to run (default: %(default)s)",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="use target/release as it is, without cargo build"
    )
    args = parser.parse_args()
    series = args.series or (10_000 if args.quick else 100_000)
    window = args.window or (10.0 if args.quick else 60.0)
    if args.remote_write or args.mode == "remote-write":
        only = set(args.peers.split(","))
        if only - set(RW_PEERS):
            parser.error(f"--peers: unknown {','.join(only - set(RW_PEERS))}")
        remote_write_mode(series, args.interval, window, not args.no_build, only)
    else:
        serve_mode(args, series, window)


def serve_mode(args, series, window):
    requests = 5 if args.quick else 20

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    missing = [b for b in ("prometheus", "vmagent") if shutil.which(b) is None]
    if missing and os.environ.get("CI") == "true":
        sys.exit(f"missing peers under CI=true: {missing} (./scripts/test installs them)")

    agent = f"127.0.0.1:{free_port()}"
    app = subprocess.Popen(
        [RELAY, "demo", "--agent-only", "--series", str(series), "--agent-address", agent],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hole = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BlackHole)
    threading.Thread(target=hole.serve_forever, daemon=True).start()
    blackhole = f"127.0.0.1:{hole.server_address[1]}"
    try:
        wait_for("the synthetic app", lambda: get(f"http://{agent}/metrics")[0] == 200)
        body = get(f"http://{agent}/metrics")[1]
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"app: {samples} samples, "
            f"{len(body) / 1e6:.1f} MB; scrape every {args.interval}s; "
            f"{window:.0f}s measured per peer after a warm-up"
        )
        results = {}
        for name, argv, serve_path, binary in peers(agent, args.interval, blackhole):
            if binary and shutil.which(binary) is None:
                print(f"{name:22} skipped: {binary} not installed")
                continue
            results[name] = measure(
                name, argv, serve_path, agent, args.interval, window, requests
            )
            r = results[name]
            served = (
                f"  GET all p50 {r['p50']:7.1f} ms ({r['size'] / 1e6:.1f} MB)"
                if r["p50"] is not None
                else ""
            )
            print(
                f"{name:22} CPU {r['cpu']:6.2f} s ({r['cpu_per_scrape'] * 1000:7.1f} ms/scrape)"
                f"  RSS peak {r['peak']:7.1f} MiB, end {r['rss']:7.1f} MiB{served}"
            )
        base = results["relay"]
        print("\nratio to relay (higher = relay better):")
        for name, r in results.items():
            if name == "relay":
                continue
            line = (
                f"  {name:22} CPU {r['cpu'] / max(base['cpu'], 1e-9):5.1f}x"
                f"  peak RSS {r['peak'] / base['peak']:5.1f}x"
            )
            if r["p50"] is not None and base["p50"]:
                line += f"  GET all {r['p50'] / base['p50']:5.1f}x"
            print(line)
    finally:
        hole.shutdown()
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
