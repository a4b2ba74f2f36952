#!/usr/bin/env python3
"""Soak: relay remote-writing an app's metrics while things go wrong.

One command, loopback only, bounded time (--duration, default 120 s). An app
(here, in this script) exposes --series series whose value is the number of
the scrape it answers, and remembers when it answered each scrape; relay
(target/release/relay) scrapes it every second and remote-writes to the
counting sink (target/release/examples/rw_sink). During the run, in turn:

  * the app goes away for 3 s (its port closed, then opened again);
  * the config file is changed and relay gets SIGHUP (the scrape timeout
    flips between 900 ms and 800 ms, so the scrape loop is replaced);
  * relay is restarted: SIGTERM (it flushes and must exit 0), then started
    again on the same WAL.

Every few seconds it samples relay's RSS and open fds from /proc. At the end
relay gets SIGTERM (which flushes everything), and the sink's per-timestamp
groups are matched against the scrapes the app answered: a scrape is
delivered when the sink has all its series (plus relay's 5 report series)
under a timestamp no later than the answer and at most 1 s before it. A
scrape answered within 100 ms of a SIGTERM may have been cancelled in flight
(relay then scrapes once more before exiting); those are listed apart, not
counted as lost.

Exits 1 if any other answered scrape was not delivered, relay exited non-zero
after SIGTERM, a reload failed, or RSS or fds grew without bound (the last
quarter's peak over the first quarter's by more than 50 % + 16 MiB, or 8
fds); 0 otherwise.

    python3 benches/soak.py                    # 120 s, 1000 series
    python3 benches/soak.py --quick            # 20 s
    python3 benches/soak.py --duration 600 --series 10000 --no-build
"""

import argparse
import calendar
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RELAY_BIN and RW_SINK_BIN: binaries built elsewhere (see benches/e2e.py).
PREBUILT = bool(os.environ.get("RELAY_BIN"))
RELAY = os.environ.get("RELAY_BIN") or os.path.join(ROOT, "target", "release", "relay")
SINK = os.environ.get("RW_SINK_BIN") or os.path.join(ROOT, "target", "release", "examples", "rw_sink")
REPORT_SERIES = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_ms():
    return int(time.time() * 1000)


def log_time(line):
    """The epoch seconds of a relay log line's `time=` field (None if none)."""
    field = next((w for w in line.split() if w.startswith("time=")), None)
    if field is None:
        return None
    try:
        stamp = time.strptime(field[5:].split(".")[0], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    frac = field[5:].rstrip("Z").partition(".")[2]
    return calendar.timegm(stamp) + (float("0." + frac) if frac else 0.0)


def sighup_outcome(text, since):
    """What relay did with a SIGHUP sent at `since` (epoch seconds): None
    until its log has a "SIGHUP: reloading" line stamped at or after
    `since` and the reload's outcome after it, then "reloaded" or
    "refused". A reload's own timestamp must move past the SIGHUP: an
    earlier reload (or the `relay_config_last_reload_successful` gauge,
    already 1 before) says nothing about this one. The log, not /metrics:
    a GET of an idle relay's /metrics has the app scraped for that GET
    alone (not remote-written), which this soak would count as lost."""
    hup = None
    for line in text.splitlines():
        at = log_time(line)
        if at is None or at < since - 0.001:
            continue
        if hup is None:
            if 'msg="SIGHUP: reloading the config"' in line:
                hup = at
        elif 'msg="config reloaded"' in line:
            return "reloaded"
        elif 'msg="config reload refused' in line:
            return "refused"
    return None


def get(url, timeout=10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class App:
    """The scraped app: series valued with the scrape's number; it records
    (number, answered at ms) of every scrape whose answer it wrote whole."""

    def __init__(self, series):
        self.series = series
        self.port = free_port()
        self.answered = []
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    def start(self):
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with app.lock:
                    n = len(app.answered) + 1
                body = "".join(
                    f'soak_series{{i="{i}"}} {n}\n' for i in range(app.series)
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                    self.wfile.flush()
                except OSError:
                    return
                with app.lock:
                    app.answered.append((len(app.answered) + 1, now_ms()))

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Relay:
    def __init__(self, workdir, app_port, sink_url):
        self.workdir = workdir
        self.config = os.path.join(workdir, "relay.yml")
        self.port = free_port()
        self.app_port = app_port
        self.sink_url = sink_url
        self.timeout = "900ms"
        self.proc = None
        self.log = open(os.path.join(workdir, "relay.log"), "ab")
        self.lifetimes = 0
        self.write_config()

    def write_config(self):
        with open(self.config + ".tmp", "w") as f:
            f.write(
                f"global:\n  scrape_interval: 1s\n  scrape_timeout: {self.timeout}\n"
                f"scrape_configs:\n  - job_name: app\n"
                f"    static_configs: [{{targets: [\"127.0.0.1:{self.app_port}\"]}}]\n"
                f"remote_write:\n  - url: {self.sink_url}\n    name: sink\n"
                f"    queue_config: {{batch_send_deadline: 500ms, max_backoff: 1s}}\n"
                f"relay:\n  listen_address: 127.0.0.1:{self.port}\n"
                f"  wal_dir: {self.workdir}/wal\n  shutdown_timeout: 20s\n"
            )
        os.replace(self.config + ".tmp", self.config)

    def start(self):
        self.proc = subprocess.Popen(
            [RELAY, "run", "--config", self.config],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.lifetimes += 1
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                get(f"http://127.0.0.1:{self.port}/-/healthy", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("relay did not become healthy within 30 s")

    def terminate(self):
        """SIGTERM; the exit status (relay flushes first)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed after 60 s"

    def reload_after(self, since):
        """The outcome relay logged for a SIGHUP sent at or after `since`."""
        with open(os.path.join(self.workdir, "relay.log"), "rb") as f:
            return sighup_outcome(f.read().decode("utf-8", "replace"), since)

    def rss_fds(self):
        pid = self.proc.pid
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) // 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Sink:
    """examples/rw_sink.rs: counts what it receives, by timestamp."""

    def __init__(self):
        self.proc = subprocess.Popen([SINK, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            sys.exit(f"rw_sink did not start (said {line!r})")
        self.address = line.split()[-1]
        self.url = f"http://{self.address}/api/v1/write"

    def stats(self):
        return json.loads(get(f"http://{self.address}/stats", timeout=60))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def match(answered, groups, series, sigterms):
    """Splits the answered scrapes into delivered, in flight at a SIGTERM,
    and lost; also returns the full groups no answered scrape explains."""
    # rw_sink's `distinct` leaves staleness markers out: a failed scrape's
    # group (relay's report series and markers) has just the report series.
    full = sorted(g["ts"] for g in groups if g["distinct"] >= series + REPORT_SERIES)
    partial = [g for g in groups if 0 < g["distinct"] - REPORT_SERIES < series]
    used = set()
    delivered, in_flight, lost = [], [], []
    j = 0
    for n, at in answered:
        # The group stamped at this scrape's start: within 1 s before the answer.
        while j < len(full) and full[j] < at - 1000:
            j += 1
        if j < len(full) and full[j] <= at + 1 and full[j] not in used:
            used.add(full[j])
            delivered.append(n)
            j += 1
        elif any(abs(at - t) <= 100 for t in sigterms):
            in_flight.append(n)
        else:
            lost.append(n)
    extra = [t for t in full if t not in used]
    return delivered, in_flight, lost, extra, partial


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--quick", action="store_true", help="20 s (one of each fault)")
    parser.add_argument("--series", type=int, default=1000, help="app series (default 1000)")
    parser.add_argument(
        "--no-build", action="store_true", help="use target/release as it is, without cargo build"
    )
    args = parser.parse_args()
    duration = 20.0 if args.quick else args.duration
    if not args.no_build and not PREBUILT:
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--bins", "--example", "rw_sink"],
            cwd=ROOT,
            check=True,
        )
    # The faults, in turn, at these offsets within each cycle (seconds).
    cycle = 20.0 if args.quick else 30.0
    plan = [(4.0, "outage"), (10.0, "reload"), (15.0, "restart")]
    if not args.quick:
        plan.append((24.0, "reload"))

    sink = Sink()
    app = App(args.series)
    app.start()
    failures = []
    with tempfile.TemporaryDirectory(prefix="relay-soak-") as workdir:
        relay = Relay(workdir, app.port, sink.url)
        relay.start()
        print(
            f"soak: {duration:.0f} s, app with {args.series} series scraped every 1 s, "
            f"remote write to rw_sink; faults every {cycle:.0f} s cycle: "
            + ", ".join(f"{what} at +{at:.0f} s" for at, what in plan),
            flush=True,
        )
        rows, sigterms, events = [], [], {"outage": 0, "reload": 0, "restart": 0}
        start = time.time()
        next_sample = 0.0
        done = set()
        try:
            while (elapsed := time.time() - start) < duration:
                cycle_no, offset = divmod(elapsed, cycle)
                for at, what in plan:
                    key = (int(cycle_no), at)
                    if offset >= at and key not in done:
                        done.add(key)
                        events[what] += 1
                        if what == "outage":
                            app.stop()
                            time.sleep(3)
                            app.start()
                        elif what == "reload":
                            relay.timeout = "800ms" if relay.timeout == "900ms" else "900ms"
                            relay.write_config()
                            sent = time.time()
                            relay.proc.send_signal(signal.SIGHUP)
                            # (a loaded machine gets 30 s; the file watch
                            # may apply the same edit too, which does not
                            # count: the outcome follows the SIGHUP's line)
                            deadline = sent + 30
                            outcome = relay.reload_after(sent)
                            while outcome is None and time.time() < deadline:
                                time.sleep(0.05)
                                outcome = relay.reload_after(sent)
                            if outcome != "reloaded":
                                failures.append(f"reload at {elapsed:.0f} s: the SIGHUP's reload was {outcome or 'not logged within 30 s'}")
                        else:
                            sigterms.append(now_ms())
                            status = relay.terminate()
                            sigterms.append(now_ms())
                            if status != 0:
                                failures.append(f"relay exited {status} after SIGTERM")
                            relay.start()
                if elapsed >= next_sample:
                    rss, fds = relay.rss_fds()
                    rows.append((elapsed, relay.lifetimes, rss, fds))
                    next_sample += 2.0 if args.quick else 5.0
                time.sleep(0.1)
        finally:
            sigterms.append(now_ms())
            status = relay.terminate()
            sigterms.append(now_ms())
            if status != 0:
                failures.append(f"relay exited {status} after the final SIGTERM")
            app.stop()
        stats = sink.stats()
        sink.stop()
        with open(os.path.join(workdir, "relay.log"), "rb") as f:
            log = f.read().decode(errors="replace")

    with app.lock:
        answered = list(app.answered)
    delivered, in_flight, lost, extra, partial = match(
        answered, stats["timestamps"], args.series, sigterms
    )
    print("\n| t (s) | relay run | RSS (MiB) | open fds |")
    print("|---:|---:|---:|---:|")
    for elapsed, life, rss, fds in rows:
        print(f"| {elapsed:.0f} | {life} | {rss} | {fds} |")
    served_samples = len(answered) * args.series
    delivered_samples = len(delivered) * args.series
    print(
        f"\nfaults: {events['outage']} app outages of 3 s, {events['reload']} reloads (SIGHUP), "
        f"{events['restart']} relay restarts (SIGTERM + start)"
    )
    print(f"scrapes answered by the app: {len(answered)} ({served_samples} samples of its series)")
    print(
        f"scrapes delivered whole to the sink: {len(delivered)} ({delivered_samples} samples); "
        f"in flight at a SIGTERM: {len(in_flight)}; lost: {len(lost)}; partial groups: {len(partial)}; "
        f"unexplained groups: {len(extra)}"
    )
    print(
        f"sink: {stats['samples']} samples received: {stats['distinct']} distinct by (timestamp, series), "
        f"{stats['stale']} staleness markers, "
        f"{stats['samples'] - stats['stale'] - stats['distinct']} redelivered; "
        f"{stats['out_of_order']} out of order"
    )
    errors = [l for l in log.splitlines() if "level=ERROR" in l]
    print(f"relay log: {len(errors)} ERROR lines")
    for line in errors[:5]:
        print("  " + line)
    if lost:
        failures.append(f"{len(lost)} answered scrapes never delivered: {lost[:20]}")
    if partial:
        failures.append(f"{len(partial)} scrapes delivered in part")
    if stats["out_of_order"]:
        failures.append(f"{stats['out_of_order']} samples out of order at the sink")
    quarter = max(1, len(rows) // 4)
    first, last = rows[:quarter], rows[-quarter:]
    rss_first, rss_last = max(r[2] for r in first), max(r[2] for r in last)
    fds_first, fds_last = max(r[3] for r in first), max(r[3] for r in last)
    print(f"RSS peak: first quarter {rss_first} MiB, last quarter {rss_last} MiB; "
          f"fds peak: first quarter {fds_first}, last quarter {fds_last}")
    if rss_last > rss_first * 1.5 + 16:
        failures.append(f"RSS grew from {rss_first} to {rss_last} MiB")
    if fds_last > fds_first + 8:
        failures.append(f"open fds grew from {fds_first} to {fds_last}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("\nOK: no answered scrape lost, relay exited 0 on every SIGTERM, RSS and fds bounded")


if __name__ == "__main__":
    main()
