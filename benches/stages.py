#!/usr/bin/env python3
"""Instructions per series for each stage of the remote-write hot path,
counted by callgrind (repeatable on a noisy machine, unlike wall time).

    python3 benches/stages.py [--iterations N] [STAGE ...]

Builds the `stages` bench (release profile), runs each stage under
`valgrind --tool=callgrind`, collecting only the measured loop (not input
generation or warm-up), and prints instructions per series. Compare two
revisions by running it in a checkout of each.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["parse", "first_scrape", "scrape_known", "scrape_to_wal",
          "wal_append", "wal_read", "encode_snappy", "encode_v2_snappy"]
WHAT = {
    "parse": "parse the body (every entry)",
    "first_scrape": "a target's first scrape: parse, labels, relabel, sort, render, cache",
    "scrape_known": "a steady scrape into the text snapshot (series known)",
    "scrape_to_wal": "a steady scrape with the WAL the only sink (records built, not written)",
    "wal_append": "append one steady scrape's records to a segment",
    "wal_read": "a queue's tailer reading one scrape back (series + samples)",
    "encode_snappy": "WriteRequests of 2000 samples, snappy-compressed",
    "encode_v2_snappy": "2.0 Requests of the same 2000 samples (with metadata), snappy-compressed",
}


def build():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "stages", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "stages" \
                and msg.get("executable"):
            return msg["executable"]
    sys.exit("stages: no bench executable in cargo's output")


def count(binary, stage, iterations):
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
             "--collect-atstart=no", "--toggle-collect=*measured*",
             binary, stage, str(iterations)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"stages: {stage} failed:\n{run.stderr[-2000:]}")
        series = int(re.search(r"series=(\d+)", run.stdout).group(1))
        with open(out_file) as f:
            totals = [int(l.split()[1]) for l in f if l.startswith(("summary:", "totals:"))]
        if not totals or totals[0] == 0:
            sys.exit(f"stages: callgrind counted nothing for {stage}")
        return totals[0], series


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", default=STAGES)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    binary = build()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True).stdout.strip()
    print(f"callgrind instructions per series, {args.iterations} iterations, at {rev}\n")
    print("| stage | instructions / series | what |")
    print("|---|---:|---|")
    for stage in args.stages:
        total, series = count(binary, stage, args.iterations)
        print(f"| {stage} | {total / args.iterations / series:,.1f} | {WHAT[stage]} |",
              flush=True)


if __name__ == "__main__":
    main()
