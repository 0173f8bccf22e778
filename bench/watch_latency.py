"""`doctor watch` latency: how soon a NaN appended to a big live log is reported. Target: about a second.

A trainer_log.jsonl (LLaMA-Factory format) with --lines entries is followed by `run_watch` at the CLI's
default poll interval (0.25 s). Each trial appends one non-finite entry and times append → report.
The peer is what a watcher without incremental reading would pay per poll: a full `doctor check` of
the same file. One run prints both and the ratio.

    .venv/bin/python bench/watch_latency.py [--lines 200000] [--trials 10]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doctor.core.settings import Settings  # noqa: E402
from doctor.engine import check  # noqa: E402
from probes.training.watch import run_watch  # noqa: E402

TARGET_S = 1.0
INTERVAL_S = 0.25  # `doctor watch --interval` default


def write_log(path: Path, lines: int) -> None:
    with path.open("w") as fh:
        for i in range(1, lines + 1):
            fh.write(json.dumps({"current_steps": i, "loss": 2.0 / (1 + i * 1e-4), "lr": 1e-5}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--trials", type=int, default=10)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "trainer_log.jsonl"
        write_log(log, opts.lines)

        t0 = time.perf_counter()
        check([log], Settings())
        full_scan = time.perf_counter() - t0

        latencies: list[float] = []
        step = opts.lines
        for _ in range(opts.trials):
            out, stop = io.StringIO(), threading.Event()
            th = threading.Thread(target=run_watch, args=([folder], None, out, INTERVAL_S, stop), daemon=True)
            th.start()
            time.sleep(max(4 * INTERVAL_S, 3 * full_scan))  # it has read the existing log and follows it
            # A clean tail: each trial starts from a healthy log so the NaN is new to its watcher.
            step += 1
            t1 = time.perf_counter()
            with log.open("a") as fh:
                fh.write(json.dumps({"current_steps": step, "loss": float("nan"), "lr": 1e-5}) + "\n")
            while "TRN001" not in out.getvalue() and time.perf_counter() - t1 < 30:
                time.sleep(0.005)
            latencies.append(time.perf_counter() - t1)
            stop.set()
            th.join()
            lines = log.read_text().splitlines()[:-1]  # drop the NaN for the next trial
            log.write_text("\n".join(lines) + "\n")
            step -= 1

    med, worst = statistics.median(latencies), max(latencies)
    print(f"log: {opts.lines:,} lines; poll interval {INTERVAL_S} s; {opts.trials} trials")
    print(f"watch: append → report median {med:.3f} s, worst {worst:.3f} s (target ~{TARGET_S:.0f} s)")
    print(f"peer: full `doctor check` of the file {full_scan:.3f} s")
    print(f"ratio watch latency / full re-scan: {med / full_scan:.2f}x", "OK" if worst <= TARGET_S else "SLOW")


if __name__ == "__main__":
    main()
