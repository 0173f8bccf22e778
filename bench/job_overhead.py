"""Overhead of the job system: a retrain through `doctor.jobs` vs the same Trainer + peft loop run bare.

    python bench/job_overhead.py [--steps 150] [--repeat 1] [--rollout fixtures/rollouts/healthy]

Both sides run `doctor.jobs.training.train_adapter` (HF Trainer + peft LoRA) with the same recipe, data,
seed and steps, so they process the same tokens; tokens/s = tokens / Trainer's own train_runtime.
The job side adds everything the job system does while training: a worker subprocess streaming JSON-lines
events, a monitor process parsing them into SQLite, the device lock. Prints the ratio (target: >= 0.95),
plus the end-to-end wall-clock ratio (which also counts the worker's interpreter start and model load).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def recipe(steps: int) -> dict:
    return {
        "learning_rate": 1e-3,
        "max_steps": steps,
        "per_device_train_batch_size": 16,
        "max_grad_norm": 1.0,
        "seed": 7,
        "lora": {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    }


def count_tokens(base: Path, train: Path, steps: int, batch: int) -> int:
    """Tokens the loop sees: the first steps*batch examples of the Trainer's seeded shuffle ≈ mean length × n."""
    from transformers import AutoTokenizer

    from doctor.jobs.data import encode_example, read_jsonl

    tok = AutoTokenizer.from_pretrained(base)
    rows = read_jsonl(train)
    lengths = [len(encode_example(tok, r["prompt"], r["response"], 96)["input_ids"]) for r in rows]
    return round(sum(lengths) / len(lengths) * steps * batch)


def bare(world: Path, steps: int) -> tuple[float, float]:
    import torch

    from doctor.jobs.training import train_adapter

    if os.environ.get("DOCTOR_JOB_THREADS"):
        torch.set_num_threads(int(os.environ["DOCTOR_JOB_THREADS"]))

    events: list[dict] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        train_adapter(
            recipe(steps),
            base_model=world / "models" / "tiny-base",
            train_file=world / "data" / "train.jsonl",
            train_slices=None,
            output_dir=Path(out),
            on_event=events.append,
        )
    wall = time.perf_counter() - t0
    runtime = next(e["train_runtime"] for e in reversed(events) if "train_runtime" in e)
    return runtime, wall


def through_jobs(world: Path, rollout: Path, steps: int) -> tuple[float, float]:
    from doctor.jobs import api

    spec = {
        "kind": "retrain",
        "rollout": str(rollout),
        "method": "lora",
        "base_model": str(world / "models" / "tiny-base"),
        "recipe": recipe(steps),
        "data": {"train": str(world / "data" / "train.jsonl"), "train_slices": "all"},
        "eval": {},
        "register": False,
    }
    t0 = time.perf_counter()
    job_id = api.launch(spec, rollout)
    store = api.JobStore(rollout)
    while not store.get(job_id).done:
        time.sleep(0.2)
    job = store.get(job_id)
    if job.state != "succeeded":
        raise SystemExit(f"job {job_id} {job.state}: {job.error}")
    events = store.events(job_id)
    done_at = next(e["ts"] for e in events if e.get("event") == "done")
    runtime = next(e["train_runtime"] for e in reversed(events) if "train_runtime" in e)
    return runtime, done_at - (job.created or t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fixtures", type=Path, default=REPO / "fixtures")
    ap.add_argument("--threads", type=int, help="torch threads on both sides (DOCTOR_JOB_THREADS for the worker)")
    opts = ap.parse_args()
    if opts.threads:
        os.environ["DOCTOR_JOB_THREADS"] = str(opts.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "fixtures"
        for part in ("models", "data"):
            shutil.copytree(opts.fixtures / part, world / part)
        rollout = world / "rollouts" / "bench"
        rollout.mkdir(parents=True)
        tokens = count_tokens(world / "models" / "tiny-base", world / "data" / "train.jsonl", opts.steps, 16)
        b_rt, b_wall, j_rt, j_wall = [], [], [], []
        for _ in range(opts.repeat):  # interleaved, so machine load hits both sides alike
            rt, wall = bare(world, opts.steps)
            b_rt.append(rt)
            b_wall.append(wall)
            rt, wall = through_jobs(world, rollout, opts.steps)
            j_rt.append(rt)
            j_wall.append(wall)
    b, j = min(b_rt), min(j_rt)
    print(f"retrain, {opts.steps} steps x 16 examples, ~{tokens} tokens (best of {opts.repeat})")
    print(f"  bare Trainer + peft (one process): {tokens / b:8.0f} tokens/s  (train_runtime {b:.2f}s)")
    print(f"  through doctor jobs (worker+monitor): {tokens / j:8.0f} tokens/s  (train_runtime {j:.2f}s)")
    ratio = b / j
    print(f"  throughput ratio jobs/bare: {ratio:.3f}  ({'within' if ratio >= 0.95 else 'OUTSIDE'} the 5% target)")
    print(
        f"  end to end (incl. worker start + model load): bare {min(b_wall):.1f}s, jobs {min(j_wall):.1f}s, "
        f"ratio {min(b_wall) / min(j_wall):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
