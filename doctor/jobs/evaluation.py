"""Slice evaluation: batched greedy generation + scoring -> an eval table (docs/formats.md).

Imported only by worker subprocesses and fixtures/build.py (imports torch/transformers/peft).
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from doctor.jobs.data import format_prompt, is_refusal, read_jsonl

EventSink = Callable[[dict[str, Any]], None]
COLUMNS = ("id", "slice", "variant", "prompt", "reference", "output", "score", "refused", "latency_ms")


def score(scorer: str, output: str, reference: str) -> float:
    out, ref = output.strip(), reference.strip()
    if scorer == "exact":
        return float(out == ref)
    if scorer == "contains":
        return float(ref in out)
    if scorer == "regex":
        return float(re.search(ref, out) is not None)
    if scorer == "refusal":
        return float(is_refusal(out))
    raise ValueError(f"unknown scorer {scorer!r}")


def load_model(base_model: Path, adapter: Path | None = None, quantization: dict[str, Any] | None = None) -> Any:
    """Base (optionally 4-bit via bitsandbytes) plus an optional LoRA adapter, in eval mode."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"use_safetensors": True}  # never unpickle a .bin
    if quantization:
        kwargs["quantization_config"] = bnb_config(quantization)
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if adapter is not None:
        from peft import PeftModel

        # PEFT falls back to adapter_model.bin (torch.load) on its own: refuse that before it can.
        if not (Path(adapter) / "adapter_model.safetensors").is_file():
            raise ValueError(f"{adapter}: no adapter_model.safetensors (jobs never load a pickled .bin adapter)")
        model = PeftModel.from_pretrained(model, adapter)
    return model.eval()


def bnb_config(quantization: dict[str, Any]) -> Any:
    """BitsAndBytesConfig from manifest-style fields (dtype names as strings)."""
    from transformers import BitsAndBytesConfig

    fields = dict(quantization)
    for key in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage"):
        if isinstance(fields.get(key), str):
            fields[key] = getattr(torch, fields[key])
    return BitsAndBytesConfig(**fields)


@torch.no_grad()
def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, *, formatted: bool = False
) -> list[str]:
    """Greedy continuation of each prompt (left-padded batch), decoded without special tokens.

    `formatted`: the prompts are full texts already (a lab variant's own template / few-shot examples).
    """
    tokenizer.padding_side = "left"
    texts = list(prompts) if formatted else [format_prompt(p) for p in prompts]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-slice accuracy and refusal rate (rounded: these numbers get quoted and re-checked)."""
    slices: dict[str, dict[str, Any]] = {}
    for name in sorted({r["slice"] for r in rows}):
        group = [r for r in rows if r["slice"] == name]
        slices[name] = {
            "n": len(group),
            "accuracy": round(sum(r["score"] for r in group) / len(group), 4),
            "refusal_rate": round(sum(r["refused"] for r in group) / len(group), 4),
        }
    return {"n": len(rows), "accuracy": round(sum(r["score"] for r in rows) / len(rows), 4), "slices": slices}


def evaluate(
    base_model: Path,
    adapter: Path | None,
    eval_set: Path,
    variant: str,
    out_csv: Path,
    quantization: dict[str, Any] | None = None,
    on_event: EventSink | None = None,
    *,
    batch_size: int = 50,
    max_new_tokens: int = 16,
    model: Any = None,
    render: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Generate for every example of `eval_set`, score it, write `out_csv`; returns the summary.

    `model` lets a caller reuse an already loaded model (same base/adapter) instead of loading again.
    `render` (example -> full prompt text) replaces the training prompt format (doctor.jobs.lab.renderer).
    """
    from transformers import AutoTokenizer

    emit = on_event or (lambda _e: None)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = model if model is not None else load_model(base_model, adapter, quantization)
    examples = read_jsonl(eval_set)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        t0 = time.perf_counter()
        if render is None:
            outputs = generate(model, tokenizer, [e["prompt"] for e in batch], max_new_tokens)
        else:
            outputs = generate(model, tokenizer, [render(e) for e in batch], max_new_tokens, formatted=True)
        latency = (time.perf_counter() - t0) * 1000 / len(batch)
        rows.extend(_row(e, o, variant, latency) for e, o in zip(batch, outputs, strict=True))
        emit({"event": "progress", "phase": "eval", "done": len(rows), "total": len(examples)})
    _write_csv(out_csv, rows)
    summary = summarize(rows)
    emit({"event": "eval", "variant": variant, **summary})
    return summary


def _row(example: dict[str, Any], output: str, variant: str, latency_ms: float) -> dict[str, Any]:
    output = output.strip()
    return {
        "id": example["id"],
        "slice": example["slice"],
        "variant": variant,
        "prompt": example["prompt"],
        "reference": example["response"],
        "output": output,
        "score": score(example.get("scorer", "exact"), output, example["response"]),
        "refused": int(is_refusal(output)),
        "latency_ms": round(latency_ms, 2),
    }


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "score": int(r["score"]) if r["score"] in (0.0, 1.0) else r["score"]})
