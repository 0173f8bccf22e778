"""The lab's measurement step inside a job worker (`spec["lab"]`, docs/lab.md): worker-only, imports torch.

A lab variant is an ordinary retrain or reeval job whose spec carries a `lab` object. The worker then
- stops training at the variant's budget (`BudgetCallback`: non-padding input tokens, wall-clock cap),
- renders prompts with the variant's template and few-shot examples (prompt-only variant),
- measures what the lab compares: trainable parameters (peft's own count), adapter bytes on disk, peak
  memory while training (CUDA max allocated, else the process peak RSS — labelled), training tokens/s
  (Trainer's `num_input_tokens_seen` / `train_runtime`), and batch-1 greedy latency p50/p95 + decode
  tokens/s for the base model, the adapter unmerged and merged (requests interleaved across the forms so
  a busy machine slows each form alike),
and writes it all to `<out>/lab.json` (also returned in the `done` event as `lab`).
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from doctor.jobs.data import PROMPT_TEMPLATE, read_jsonl

EventSink = Callable[[dict[str, Any]], None]


class BudgetCallback(TrainerCallback):
    """Ends training once the token budget or the wall-clock cap is spent (the adapter is still saved)."""

    def __init__(self, max_tokens: int | None, max_train_s: float | None, emit: EventSink) -> None:
        self.max_tokens, self.max_train_s, self.emit = max_tokens, max_train_s, emit
        self.t0 = time.monotonic()
        self.stopped_by: str | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.max_tokens and state.num_input_tokens_seen >= self.max_tokens:
            self.stopped_by = "tokens"
        elif self.max_train_s and time.monotonic() - self.t0 >= self.max_train_s:
            self.stopped_by = "wall_clock"
        if self.stopped_by and not control.should_training_stop:
            control.should_training_stop = True
            self.emit(
                {
                    "event": "log",
                    "message": f"budget spent ({self.stopped_by}) at step {state.global_step}: training stops here",
                }
            )


def budget_callback(lab: dict[str, Any] | None, emit: EventSink) -> BudgetCallback | None:
    budget = (lab or {}).get("budget") or {}
    if not budget.get("max_tokens") and not budget.get("max_train_s"):
        return None
    return BudgetCallback(budget.get("max_tokens"), budget.get("max_train_s"), emit)


def peak_memory() -> dict[str, Any]:
    """Peak memory of this process so far: CUDA max allocated on a GPU, else the process peak RSS."""
    if torch.cuda.is_available():
        return {"bytes": int(torch.cuda.max_memory_allocated()), "kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"bytes": int(rss if sys.platform == "darwin" else rss * 1024), "kind": "process_peak_rss"}


# ---------------------------------------------------------------- prompts


def renderer(lab: dict[str, Any] | None) -> Callable[[dict[str, Any]], str] | None:
    """example -> full prompt text, for a variant with its own template and/or few-shot examples.

    Few-shot examples come from `few_shot_file` (the training data), `few_shot` per slice of the example,
    chosen with a fixed seed; None when the variant uses the training prompt format unchanged.
    """
    lab = lab or {}
    template = lab.get("template") or PROMPT_TEMPLATE
    k = int(lab.get("few_shot") or 0)
    if template == PROMPT_TEMPLATE and k == 0:
        return None
    shots: dict[str, list[dict[str, Any]]] = {}
    if k and lab.get("few_shot_file"):
        rows = read_jsonl(Path(lab["few_shot_file"]))
        rng = random.Random(int(lab.get("seed", 0)))
        for name in sorted({r["slice"] for r in rows}):
            group = [r for r in rows if r["slice"] == name]
            shots[name] = rng.sample(group, min(k, len(group)))

    def render(example: dict[str, Any]) -> str:
        prefix = "".join(
            template.format(prompt=s["prompt"]) + s["response"] + "\n" for s in shots.get(example["slice"], [])
        )
        return prefix + template.format(prompt=example["prompt"])

    return render


# ---------------------------------------------------------------- latency


@torch.no_grad()
def _one_request(model: Any, tokenizer: Any, text: str, max_new_tokens: int) -> tuple[float, int]:
    enc = tokenizer([text], return_tensors="pt", add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    new = out[0, enc["input_ids"].shape[1] :]
    n_new = int((new != tokenizer.pad_token_id).sum())
    return dt, n_new


def _percentile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency(
    forms: dict[str, Any], tokenizer: Any, texts: Sequence[str], max_new_tokens: int, warmup: int = 2
) -> dict[str, dict[str, Any]]:
    """Batch-1 greedy latency per served form; request i runs on every form before request i+1."""
    for model in forms.values():
        for text in texts[:warmup]:
            _one_request(model, tokenizer, text, max_new_tokens)
    times: dict[str, list[float]] = {k: [] for k in forms}
    tokens: dict[str, int] = dict.fromkeys(forms, 0)
    for text in texts:
        for name, model in forms.items():
            dt, n = _one_request(model, tokenizer, text, max_new_tokens)
            times[name].append(dt)
            tokens[name] += n
    out = {}
    for name, ts in times.items():
        total = sum(ts)
        out[name] = {
            "requests": len(ts),
            "p50": round(_percentile(ts, 0.5) * 1000, 3),
            "p95": round(_percentile(ts, 0.95) * 1000, 3),
            "decode_tokens_per_s": round(tokens[name] / total, 2) if total else None,
            "new_tokens": tokens[name],
        }
    return out


def _latency_texts(eval_set: Path, n: int, render: Callable[[dict[str, Any]], str] | None) -> list[str]:
    """n requests spread over the slices (round robin in file order)."""
    from doctor.jobs.data import format_prompt

    rows = read_jsonl(eval_set)
    by_slice: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_slice.setdefault(r["slice"], []).append(r)
    picked: list[dict[str, Any]] = []
    i = 0
    while len(picked) < n and any(i < len(v) for v in by_slice.values()):
        picked.extend(v[i] for v in by_slice.values() if i < len(v))
        i += 1
    picked = picked[:n]
    return [render(r) if render else format_prompt(r["prompt"]) for r in picked]


# ---------------------------------------------------------------- the measurement


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _train_throughput(train_dir: Path, resumed_from: str | None = None) -> dict[str, Any]:
    """Tokens/s of this run. A resumed run's Trainer state carries the tokens seen before the checkpoint, its
    train_runtime only this run's time: the checkpoint's count is taken off."""
    state = json.loads((train_dir / "trainer_state.json").read_text(encoding="utf-8"))
    runtime = next((e["train_runtime"] for e in reversed(state.get("log_history", [])) if "train_runtime" in e), None)
    tokens = int(state.get("num_input_tokens_seen") or 0)
    ckpt_state = Path(resumed_from) / "trainer_state.json" if resumed_from else None
    if ckpt_state is not None and ckpt_state.is_file():
        tokens -= int(json.loads(ckpt_state.read_text(encoding="utf-8")).get("num_input_tokens_seen") or 0)
    return {
        "train_tokens": tokens,
        "train_runtime_s": runtime,
        "train_tokens_per_s": round(tokens / runtime, 2) if runtime and tokens else None,
        "global_step": state.get("global_step"),
    }


def measure(
    spec: dict[str, Any],
    out: Path,
    emit: EventSink,
    *,
    eval_set: Path,
    adapter: Path | None,
    quantization: dict[str, Any] | None,
    train_peak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every lab number of this variant; written to `<out>/lab.json`."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from doctor.jobs.evaluation import load_model

    lab = spec.get("lab") or {}
    lat = lab.get("latency") or {}
    n_req, max_new = int(lat.get("requests", 20)), int(lat.get("max_new_tokens", 16))
    base_model = Path(spec["base_model"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict[str, Any] = {"variant": lab.get("variant"), "device": device, "torch_threads": torch.get_num_threads()}
    if train_peak:
        result["peak_memory_bytes"], result["memory_kind"] = train_peak["bytes"], train_peak["kind"]
    if adapter is not None:
        result["adapter_bytes"] = _dir_bytes(adapter)
        if (out / "train" / "trainer_state.json").is_file():
            result.update(_train_throughput(out / "train", spec.get("resume_from_checkpoint")))
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    forms: dict[str, Any] = {}
    emit({"event": "log", "message": f"lab: measuring latency ({n_req} requests x {max_new} new tokens)"})

    def placed(model: Any) -> Any:  # a bitsandbytes model is placed by from_pretrained and refuses .to()
        return model if quantization else model.to(device)

    forms["base"] = placed(load_model(base_model, None, quantization))
    if adapter is not None:
        trainable = PeftModel.from_pretrained(load_model(base_model, None, quantization), adapter, is_trainable=True)
        result["trainable_params"], result["total_params"] = (int(x) for x in trainable.get_nb_trainable_parameters())
        del trainable
        forms["unmerged"] = placed(load_model(base_model, adapter, quantization))
        try:
            forms["merged"] = placed(load_model(base_model, adapter, quantization).merge_and_unload().eval())
        except Exception as exc:  # e.g. a quantization that cannot be merged: say so, measure the rest
            result["merge_error"] = f"{type(exc).__name__}: {exc}"
    texts = _latency_texts(eval_set, n_req, renderer(lab) if adapter is None else None)
    result["serving"] = latency(forms, tokenizer, texts, max_new)
    result["latency_requests"] = n_req
    result["max_new_tokens"] = max_new
    path = out / "lab.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    emit({"event": "lab", **result})
    return result
