"""The job worker: `python -m doctor.jobs.worker SPEC [--out DIR]` — the only place the training stack runs.

Reads a validated job spec (docs/jobs.md), runs a LoRA/QLoRA retrain (HF Trainer + peft; QLoRA through
bitsandbytes 4-bit) followed by a re-eval of the new adapter, or a re-eval alone, and streams JSON-lines
events on stdout: `log`, `progress` (step, max_steps, eta_s), `metrics` (loss, grad_norm, learning_rate…),
`result` (training summary), `eval` (per-slice summary), `done` (outputs), `error`, `cancelled`.
Everything it writes goes under `--out` (default: `out/` beside the spec); the monitor moves the adapter
into place afterwards, so a worker killed at any point leaves nothing half-written in the rollout.
SIGTERM/SIGINT stop it at the next step (`cancelled` event, exit code 130).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_CANCELLED = 130


class Cancelled(Exception):
    """Raised from the event sink once a stop was requested (unwinds Trainer.train cleanly)."""


class Emitter:
    """JSON lines on a private copy of stdout (library prints are sent to stderr), with ETA and cancel checks."""

    def __init__(self, stream: Any, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.stop = False
        self.t_first: float | None = None
        self.step_first = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") == "progress" and event.get("phase") == "train":
            now = time.monotonic()
            step, total = int(event.get("step", 0)), int(event.get("max_steps", 0))
            if self.t_first is None:
                self.t_first, self.step_first = now, step
            elif step > self.step_first and total:
                rate = (now - self.t_first) / (step - self.step_first)
                event["eta_s"] = round(rate * max(total - step, 0), 2)
        self.send(event)
        if self.stop:
            raise Cancelled()

    def send(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        event.setdefault("ts", time.time())
        self.stream.write(json.dumps(_jsonable(event), default=str) + "\n")
        self.stream.flush()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _private_stdout() -> Any:
    """Events keep the real stdout; fd 1 is pointed at stderr so nothing else can corrupt the stream."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def _scored_eval_set(eval_set: Path, scorers: dict[str, str], out_dir: Path) -> Path:
    if not scorers:
        return eval_set
    from doctor.jobs.data import read_jsonl, write_jsonl

    rows = [{**r, "scorer": scorers.get(r["slice"], r.get("scorer", "exact"))} for r in read_jsonl(eval_set)]
    path = out_dir / "eval_set.jsonl"
    write_jsonl(path, rows)
    return path


def run_retrain(spec: dict[str, Any], out: Path, emit: Emitter) -> dict[str, Any]:
    import torch

    from doctor.jobs.evaluation import evaluate
    from doctor.jobs.training import train_adapter

    recipe = json.loads(json.dumps(spec["recipe"]))
    max_length = spec.get("max_length") or recipe.pop("max_seq_length", None) or 96
    recipe.pop("max_seq_length", None)
    if spec.get("save_steps"):
        recipe["save_strategy"] = "steps"
        recipe["save_steps"] = spec["save_steps"]
        recipe.setdefault("save_total_limit", 2)  # resume needs the last; older ones only fill the disk
    if spec.get("method") != "qlora":
        recipe.pop("quantization", None)
    _compat_training_args(recipe, emit)
    data = spec["data"]
    slices = None if data.get("train_slices") in (None, "all") else list(data["train_slices"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    emit({"event": "log", "message": f"retrain ({spec['method']}) on {device}; torch {torch.__version__}"})
    lab = spec.get("lab")
    callbacks = []
    if lab:
        from doctor.jobs.lab import budget_callback

        recipe.setdefault("include_num_input_tokens_seen", "non_padding")  # train tokens/s, token budget
        cb = budget_callback(lab, emit)
        callbacks = [cb] if cb else []
    t0 = time.perf_counter()
    if spec.get("trainer"):  # the rollout's own training command (TRL CLI, a script): doctor.jobs.external
        from doctor.jobs.external import run_command_retrain

        ran = run_command_retrain(spec, out, emit)
        summary = ran["summary"]
    else:
        summary = train_adapter(
            recipe,
            base_model=Path(spec["base_model"]),
            train_file=Path(data["train"]),
            train_slices=slices,
            output_dir=out,
            on_event=emit,
            resume_from_checkpoint=spec.get("resume_from_checkpoint"),
            mix=data.get("mix"),
            base_model_name=spec.get("base_model_name"),
            max_length=max_length,
            callbacks=callbacks,
        )
    train_s = time.perf_counter() - t0
    train_peak = None
    if lab:
        from doctor.jobs.lab import peak_memory

        train_peak = peak_memory()  # before the eval and latency runs add their own
    summary.pop("log_history", None)
    result: dict[str, Any] = {"train": summary, "train_wall_s": round(train_s, 3), "device": device}
    eval_set = (spec.get("eval") or {}).get("eval_set")
    if eval_set and _rank() == 0:
        quant = recipe.get("quantization") if spec["method"] == "qlora" else None
        emit({"event": "log", "message": f"re-evaluating the new adapter on {Path(eval_set).name}"})
        result["eval"] = evaluate(
            Path(spec["base_model"]),
            out / "adapter",
            Path(eval_set),
            (lab or {}).get("variant") or spec["method"],
            out / "eval" / "candidate.csv",
            quantization=quant,
            on_event=emit,
        )
        result["eval_table"] = str(out / "eval" / "candidate.csv")
    result["adapter_dir"] = str(out / "adapter")
    result["train_dir"] = str(out / "train")
    if lab and eval_set and _rank() == 0:
        from doctor.jobs.lab import measure

        quant = recipe.get("quantization") if spec["method"] == "qlora" else None
        result["lab"] = measure(
            spec, out, emit, eval_set=Path(eval_set), adapter=out / "adapter", quantization=quant, train_peak=train_peak
        )
    return result


def _compat_training_args(recipe: dict[str, Any], emit: Emitter) -> None:
    """Map recipe fields this transformers no longer takes: warmup_ratio → warmup_steps (a float < 1 is a ratio)."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments.__init__).parameters
    if "warmup_ratio" in recipe and "warmup_ratio" not in params:
        ratio = recipe.pop("warmup_ratio")
        if ratio:
            recipe["warmup_steps"] = float(ratio)
            emit({"event": "log", "message": f"warmup_ratio={ratio} passed as warmup_steps={ratio} (a ratio)"})


def run_reeval(spec: dict[str, Any], out: Path, emit: Emitter) -> dict[str, Any]:
    from doctor.jobs.evaluation import evaluate

    adapter = Path(spec["adapter"]) if spec.get("adapter") else None
    eval_set = _scored_eval_set(Path(spec["eval_set"]), spec.get("scorers") or {}, out)
    table = out / "eval" / f"{spec['variant']}.csv"
    emit(
        {"event": "log", "message": f"evaluating {'base + ' + adapter.name if adapter else 'base'} ({spec['variant']})"}
    )
    lab = spec.get("lab")
    render = None
    if lab:
        from doctor.jobs.lab import renderer

        render = renderer(lab)
    summary = evaluate(
        Path(spec["base_model"]),
        adapter,
        eval_set,
        spec["variant"],
        table,
        quantization=spec.get("quantization"),
        on_event=emit,
        render=render,
        **{k: spec[k] for k in ("batch_size", "max_new_tokens") if spec.get(k)},
    )
    result = {"eval": summary, "eval_table": str(table)}
    if lab:
        from doctor.jobs.lab import measure

        result["lab"] = measure(
            spec, out, emit, eval_set=eval_set, adapter=adapter, quantization=spec.get("quantization")
        )
    return result


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m doctor.jobs.worker", description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--out", type=Path, help="output folder (default: out/ beside the spec)")
    opts = ap.parse_args(argv)
    stream = _private_stdout()
    emit = Emitter(stream, enabled=_rank() == 0)

    def _stop(signum: int, _frame: Any) -> None:
        emit.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threads = os.environ.get("DOCTOR_JOB_THREADS")
    try:
        from doctor.jobs.spec import load_spec

        spec = load_spec(opts.spec)
        out = (opts.out or opts.spec.resolve().parent / "out").resolve()
        out.mkdir(parents=True, exist_ok=True)
        emit.send({"event": "log", "message": f"worker pid {os.getpid()} started: {spec['kind']} → {out}"})
        import torch
        from transformers.utils import logging as hf_logging

        if threads:
            torch.set_num_threads(int(threads))
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if spec["kind"] == "parity":
            from doctor.jobs.parity import run_parity

            result = run_parity(spec, out, emit)
        else:
            result = run_retrain(spec, out, emit) if spec["kind"] == "retrain" else run_reeval(spec, out, emit)
        if emit.stop:
            raise Cancelled()
        emit.send({"event": "done", "kind": spec["kind"], **result})
        return 0
    except Cancelled:
        emit.send({"event": "cancelled", "message": "stopped on request (SIGTERM/SIGINT)"})
        return EXIT_CANCELLED
    except Exception as exc:
        emit.send({"event": "error", "message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        return 1


if __name__ == "__main__":
    sys.exit(main())
