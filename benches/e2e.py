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

    python3 benches/e2e.py              # 100k series, 60 s window per peer
    python3 benches/e2e.py --quick      # 10k series, 10 s window (CI smoke run)
"""

import argparse
import http.server
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
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(window)
        cpu = cpu_seconds(proc.pid) - cpu0
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k series, 10 s window")
    parser.add_argument("--series", type=int)
    parser.add_argument("--window", type=float, help="seconds measured per peer")
    parser.add_argument("--interval", type=int, default=5, help="scrape interval, seconds")
    args = parser.parse_args()
    series = args.series or (10_000 if args.quick else 100_000)
    window = args.window or (10.0 if args.quick else 60.0)
    requests = 5 if args.quick else 20

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
