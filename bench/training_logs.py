"""Training-log reading speed on big logs, against the obvious peers. One run prints every ratio.

1. trainer_state.json with 1,000,000 log_history entries: `doctor check FILE` (reader + every detector,
   in-process via doctor.engine.check) vs plain `json.load` of the same file. Target <= 1.0x (the reader
   parses with orjson; a file with bare NaN/Infinity tokens falls back to Python's json).
2. a 1,000,000-point TensorBoard event file (250,000 steps x 4 scalar tags, written with
   torch.utils.tensorboard.SummaryWriter): `doctor check` vs tensorboard's EventAccumulator loading every
   scalar (size_guidance 0). Ratio reported.
Each measurement runs in a fresh subprocess; wall time of the measured call and the process's peak RSS.
Files are cached under $TMPDIR/peft-doctor-bench (delete to regenerate).

    .venv/bin/python bench/training_logs.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "peft-doctor-bench"

MEASURE = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
what, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if what == "json":
    with open(path) as fh:
        data = json.load(fh)
    n = len(data["log_history"])
elif what == "doctor":
    from pathlib import Path
    from doctor.core.settings import Settings
    from doctor.engine import check
    t0 = time.perf_counter()
    rep = check([Path(path)], Settings())
    n = [a.facts.get("points") for a in rep.artifacts]
    n = (n, sorted({{f.rule for f in rep.findings}}))
elif what == "eventacc":
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    t0 = time.perf_counter()
    acc = EventAccumulator(path, size_guidance={{"scalars": 0}})
    acc.Reload()
    n = sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"])
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "n": n}}))
"""


def measure(what: str, path: Path) -> dict:
    code = MEASURE.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, what, str(path)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{what} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_state(path: Path, n: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(1, n + 1)
    loss = (0.5 + 2.0 * np.exp(-t / (n / 10))) * np.exp(rng.normal(0, 0.05, n))
    gn = np.exp(rng.normal(0, 0.2, n))
    lr = 2e-4 * np.minimum(1, t / (0.03 * n)) * 0.5 * (1 + np.cos(math.pi * t / n))
    hist = [
        {
            "epoch": round(float(i) / n * 3, 4),
            "grad_norm": float(g),
            "learning_rate": float(r),
            "loss": round(float(lo), 4),
            "step": int(i),
        }
        for i, lo, g, r in zip(t, loss, gn, lr)
    ]
    state = {
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": 3.0,
        "eval_steps": 500,
        "global_step": n,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": hist,
        "logging_steps": 1,
        "max_steps": n,
        "num_train_epochs": 3,
        "save_steps": 500,
        "train_batch_size": 8,
        "trial_name": None,
        "trial_params": None,
    }
    with path.open("w") as fh:
        json.dump(state, fh, indent=2)


def make_events(folder: Path, steps: int) -> Path:
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    w = SummaryWriter(log_dir=str(folder), max_queue=10000, flush_secs=120)
    loss = (0.5 + 2.0 * np.exp(-np.arange(steps) / (steps / 10))) * np.exp(rng.normal(0, 0.05, steps))
    for i in range(steps):
        w.add_scalar("train/loss", float(loss[i]), i + 1)
        w.add_scalar("train/grad_norm", 1.0, i + 1)
        w.add_scalar("train/learning_rate", 2e-4, i + 1)
        w.add_scalar("train/epoch", i / steps, i + 1)
    w.close()
    return next(folder.glob("events.out.tfevents*"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--skip-tensorboard", action="store_true", help="only the trainer_state.json part")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two measurements N times, keep the best")
    args = ap.parse_args()
    CACHE.mkdir(exist_ok=True)
    state = CACHE / f"state-{args.entries}" / "trainer_state.json"
    if not state.exists():
        state.parent.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        make_state(state, args.entries)
        print(f"wrote {state} ({state.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
    js = min((measure("json", state) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    dc = min((measure("doctor", state) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    print(f"trainer_state.json, {args.entries:,} entries ({state.stat().st_size / 1e6:.0f} MB)")
    print(f"  json.load        {js['seconds']:7.2f}s  peak RSS {js['peak_rss_mb']:7.0f} MB")
    print(f"  doctor check     {dc['seconds']:7.2f}s  peak RSS {dc['peak_rss_mb']:7.0f} MB  {dc['n']}")
    print(f"  ratio doctor/json.load = {dc['seconds'] / js['seconds']:.2f}x (target <= 1.0x)")
    if args.skip_tensorboard:
        return 0
    tb_dir = CACHE / f"tb-{args.entries}"
    found = list(tb_dir.glob("events.out.tfevents*")) if tb_dir.exists() else []
    if not found:
        t0 = time.perf_counter()
        ev = make_events(tb_dir, args.entries // 4)
        print(f"wrote {ev} ({ev.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f}s")
    else:
        ev = found[0]
    ea = measure("eventacc", ev)
    dt = measure("doctor", ev)
    print(f"TensorBoard events, {ea['n']:,} scalar points ({ev.stat().st_size / 1e6:.0f} MB)")
    print(f"  EventAccumulator {ea['seconds']:7.2f}s  peak RSS {ea['peak_rss_mb']:7.0f} MB")
    print(f"  doctor check     {dt['seconds']:7.2f}s  peak RSS {dt['peak_rss_mb']:7.0f} MB  {dt['n']}")
    print(f"  ratio doctor/EventAccumulator = {dt['seconds'] / ea['seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
