"""The parity job (kind `parity`): does the adapter serve what PEFT computes, and does its merged export?

On a small probe set drawn from the eval set (the first `probes` examples, spread over the slices) it runs,
with transformers + peft on the job's device (CPU when there is no GPU):

- **base vs base+adapter** — is the adapter a no-op? (every logit within 1e-5 of the base's)
- **adapter vs merged export** — a merged checkpoint on disk (`merged`), else `merge_and_unload()` in
  memory. The difference is judged relative to the adapter's own effect (adapter vs base): a merge is
  faithful when it moves logits by at most `tolerance` (default 5%) of what the adapter moves them.
- **QLoRA** (`quantization` given, or the rollout's method is qlora) — per LoRA layer, the error of the
  4-bit (bitsandbytes nf4/fp4) round trip of the base weight, ‖dequant(quant(W)) − W‖, against the
  adapter's own update ‖scale·B·A‖: merging into the dequantized 4-bit base instead of the 16-bit one
  changes each weight by that error.

Per pair: token agreement (argmax of the next-token logits at every answer position of the adapter's
greedy output, teacher-forced through each form), max and mean |logit difference|; per form: per-slice
accuracy of its own greedy output. Verdict: `no_op` | `merge_mismatch` | `ok` (plus `quantization_notes`).

Light at import (validation runs in `doctor check`-side code); torch/transformers/peft load in run_parity.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIELDS = {"adapter", "eval_set", "merged", "probes", "max_new_tokens", "quantization", "tolerance"}
DEFAULT_PROBES = 40
DEFAULT_TOLERANCE = 0.05
NO_OP_ATOL = 1e-5


class ParitySpecError(ValueError):
    pass


def validate(s: dict[str, Any], abs_path: Callable[[Any, str], str]) -> None:
    """Check and normalise a parity spec in place (abs_path(value, field) → absolute path string)."""
    for key in ("adapter", "eval_set"):
        if not s.get(key):
            raise ParitySpecError(f"missing {key}: a parity job needs the adapter folder and the eval set")
        s[key] = abs_path(s[key], key)
    if not (Path(s["adapter"]) / "adapter_model.safetensors").is_file():
        raise ParitySpecError(f"adapter {s['adapter']}: no adapter_model.safetensors (jobs never load a .bin)")
    if not Path(s["eval_set"]).is_file():
        raise ParitySpecError(f"eval_set {s['eval_set']}: no such file")
    if s.get("merged") is not None:
        s["merged"] = abs_path(s["merged"], "merged")
        m = Path(s["merged"])
        if not (m / "config.json").is_file() or not any(m.glob("*.safetensors")):
            raise ParitySpecError(f"merged {m}: expected a model folder with config.json and safetensors weights")
    for key, default in (("probes", DEFAULT_PROBES), ("max_new_tokens", 16)):
        v = s.setdefault(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ParitySpecError(f"{key} {v!r}: expected an integer >= 1")
    tol = s.setdefault("tolerance", DEFAULT_TOLERANCE)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < 1:
        raise ParitySpecError(f"tolerance {tol!r}: expected a fraction between 0 and 1")
    q = s.get("quantization")
    if q is not None and not (isinstance(q, dict) and q.get("load_in_4bit")):
        raise ParitySpecError("quantization: expected the rollout's 4-bit settings (load_in_4bit = true)")


def probe_set(examples: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first examples of each slice, round-robin, `n` in all (deterministic)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for e in examples:
        by.setdefault(str(e.get("slice", "all")), []).append(e)
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < n and any(i < len(v) for v in by.values()):
        for name in sorted(by):
            if i < len(by[name]) and len(out) < n:
                out.append(by[name][i])
        i += 1
    return out


def _pair(a: list[Any], b: list[Any]) -> dict[str, Any]:
    """Token agreement and |logit| differences between two forms' per-example answer logits."""
    import torch

    agree = total = 0
    max_diff, sum_diff, count = 0.0, 0.0, 0
    for x, y in zip(a, b, strict=True):
        agree += int((x.argmax(-1) == y.argmax(-1)).sum())
        total += x.shape[0]
        d = (x - y).abs()
        max_diff = max(max_diff, float(d.max()))
        sum_diff += float(d.sum())
        count += d.numel()
        del d
    _ = torch  # torch is needed by the tensors' methods above
    return {
        "token_agreement": round(agree / total, 4) if total else None,
        "max_logit_diff": float(f"{max_diff:.6g}"),
        "mean_logit_diff": float(f"{sum_diff / count:.6g}") if count else None,
        "positions": total,
    }


def _accuracy(rows: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    from doctor.jobs.evaluation import score

    slices: dict[str, list[float]] = {}
    for e, out in rows:
        slices.setdefault(str(e.get("slice", "all")), []).append(
            score(e.get("scorer", "exact"), out.strip(), str(e.get("response", "")))
        )
    allv = [v for vs in slices.values() for v in vs]
    return {
        "accuracy": round(sum(allv) / len(allv), 4) if allv else None,
        "slices": {k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in sorted(slices.items())},
    }


def _answer_logits(model: Any, seqs: list[tuple[list[int], int]], device: Any) -> list[Any]:
    """Next-token logits (float32, CPU) at the answer positions of each (ids, prompt_len) sequence."""
    import torch

    out = []
    with torch.no_grad():
        for ids, plen in seqs:
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x).logits[0].float()
            out.append(logits[plen - 1 : len(ids) - 1 if len(ids) > plen else plen].cpu())
    return out


def quantization_error(peft_model: Any, quantization: dict[str, Any]) -> list[dict[str, Any]]:
    """Per LoRA layer: ‖dequant(quant4(W)) − W‖_F against ‖scale·B·A‖_F (the adapter's own update)."""
    import bitsandbytes.functional as bnbf
    import torch

    qtype = quantization.get("bnb_4bit_quant_type", "nf4")
    rows = []
    for name, mod in peft_model.named_modules():
        if not hasattr(mod, "lora_A") or not hasattr(mod, "base_layer") or not getattr(mod, "lora_A", None):
            continue
        for key in mod.lora_A:
            w = mod.base_layer.weight.detach().float()
            q, state = bnbf.quantize_4bit(w.to(torch.bfloat16).contiguous(), quant_type=qtype)
            wq = bnbf.dequantize_4bit(q, state).float().reshape(w.shape)
            a, b = mod.lora_A[key].weight.detach().float(), mod.lora_B[key].weight.detach().float()
            delta = (b @ a) * float(mod.scaling[key])
            if getattr(mod, "fan_in_fan_out", False):
                delta = delta.T
            qerr, upd = float((wq - w).norm()), float(delta.norm())
            rows.append(
                {
                    "module": name.removeprefix("base_model.model."),
                    "quant_error": float(f"{qerr:.6g}"),
                    "update": float(f"{upd:.6g}"),
                    "ratio": float(f"{qerr / upd:.4g}") if upd > 0 else math.inf,
                }
            )
    return rows


def run_parity(spec: dict[str, Any], out: Path, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from doctor.jobs.data import format_prompt, read_jsonl
    from doctor.jobs.evaluation import generate, load_model

    t0 = time.perf_counter()
    base, adapter = Path(spec["base_model"]), Path(spec["adapter"])
    probes = probe_set(read_jsonl(Path(spec["eval_set"])), spec.get("probes", DEFAULT_PROBES))
    if not probes:
        raise ValueError(f"{spec['eval_set']}: no examples to probe with")
    max_new = spec.get("max_new_tokens", 16)
    device = torch.device("cuda" if torch.cuda.is_available() and spec.get("device") != "cpu" else "cpu")
    emit({"event": "log", "message": f"parity on {len(probes)} probes, {device}; adapter {adapter.name}"})
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = load_model(base, adapter).to(device)
    prompts = [e["prompt"] for e in probes]

    def gen(m: Any) -> list[str]:
        outs: list[str] = []
        for i in range(0, len(prompts), 16):
            outs += generate(m, tok, prompts[i : i + 16], max_new)
        return outs

    out_adapter = gen(model)
    seqs = []
    for p, o in zip(prompts, out_adapter, strict=True):
        pids = tok(format_prompt(p), add_special_tokens=False)["input_ids"]
        aids = tok(o, add_special_tokens=False)["input_ids"] if o else []
        seqs.append((pids + aids, len(pids)))
    logits_adapter = _answer_logits(model, seqs, device)
    with model.disable_adapter():
        logits_base = _answer_logits(model, seqs, device)
        out_base = gen(model)
    emit({"event": "progress", "phase": "parity", "done": 2, "total": 3})
    quant_rows = quantization_error(model, spec["quantization"]) if spec.get("quantization") else []
    if spec.get("merged"):
        del model
        merged = AutoModelForCausalLM.from_pretrained(spec["merged"], use_safetensors=True).eval().to(device)
        merged_from = str(spec["merged"])
    else:
        merged = model.merge_and_unload().eval()
        merged_from = "merge_and_unload() in memory"
    logits_merged = _answer_logits(merged, seqs, device)
    out_merged = gen(merged)
    emit({"event": "progress", "phase": "parity", "done": 3, "total": 3})

    base_vs_adapter = _pair(logits_base, logits_adapter)
    adapter_vs_merged = _pair(logits_adapter, logits_merged)
    effect = base_vs_adapter["max_logit_diff"]
    rel = adapter_vs_merged["max_logit_diff"] / effect if effect > 0 else math.inf
    adapter_vs_merged["relative_to_adapter_effect"] = float(f"{rel:.4g}") if math.isfinite(rel) else None
    tol = float(spec.get("tolerance", DEFAULT_TOLERANCE))
    if effect <= NO_OP_ATOL:
        verdict = "no_op"
        why = (
            f"the adapter changes no logit by more than {NO_OP_ATOL:g} (max {effect:.3g}) over "
            f"{base_vs_adapter['positions']} positions: it is served as the base model"
        )
    elif rel > tol:
        verdict = "merge_mismatch"
        why = (
            f"the merged export ({merged_from}) differs from the live adapter by "
            f"{adapter_vs_merged['max_logit_diff']:.4g} max |logit| = {rel:.1%} of the adapter's own effect "
            f"({effect:.4g}; tolerance {tol:.0%}); token agreement {adapter_vs_merged['token_agreement']:.1%}"
        )
    else:
        verdict = "ok"
        why = (
            f"the adapter moves logits by up to {effect:.4g} (token agreement with the base "
            f"{base_vs_adapter['token_agreement']:.1%}); the merged export matches it within "
            f"{adapter_vs_merged['max_logit_diff']:.3g} ({rel:.2g} of that effect)"
        )
    notes = []
    if quant_rows:
        worst = max(quant_rows, key=lambda r: r["ratio"])
        over = [r for r in quant_rows if r["ratio"] > 1]
        notes.append(
            f"4-bit round trip vs the adapter's update: worst {worst['module']} ratio {worst['ratio']:.3g}; "
            f"{len(over)} of {len(quant_rows)} layers change more by merging into the dequantized 4-bit base "
            "than the adapter itself changes them — merge into the 16-bit base"
            if over
            else f"4-bit round trip below the adapter's update in all {len(quant_rows)} layers "
            f"(worst {worst['module']} ratio {worst['ratio']:.3g})"
        )
    result = {
        "verdict": verdict,
        "passed": verdict == "ok",
        "why": why,
        "probes": len(probes),
        "device": str(device),
        "merged_from": merged_from,
        "pairs": {"base_vs_adapter": base_vs_adapter, "adapter_vs_merged": adapter_vs_merged},
        "accuracy": {
            "base": _accuracy(list(zip(probes, out_base, strict=True))),
            "adapter": _accuracy(list(zip(probes, out_adapter, strict=True))),
            "merged": _accuracy(list(zip(probes, out_merged, strict=True))),
        },
        "quantization": quant_rows,
        "quantization_notes": notes,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    emit({"event": "parity", **{k: result[k] for k in ("verdict", "why", "pairs")}})
    return {"parity": result, "parity_report": str(out / "parity.json")}


def render_parity(p: dict[str, Any]) -> list[str]:
    """Text lines for `doctor jobs show` and the TUI job view."""

    def pc(v: Any) -> str:
        return f"{v * 100:.1f}%" if isinstance(v, (int, float)) else "-"

    lines = [f"Parity on {p.get('probes')} probes ({p.get('device')}): {p.get('verdict')} — {p.get('why', '')}"]
    lines.append(f"  {'pair':<20} {'token agreement':>16} {'max |Δlogit|':>13} {'mean |Δlogit|':>14}")
    for name, pair in (p.get("pairs") or {}).items():
        lines.append(
            f"  {name:<20} {pc(pair.get('token_agreement')):>16} {pair.get('max_logit_diff', '-'):>13.4g} "
            f"{pair.get('mean_logit_diff') or 0:>14.3g}"
        )
    acc = p.get("accuracy") or {}
    forms = [f for f in ("base", "adapter", "merged") if f in acc]
    slices = sorted({s for f in forms for s in acc[f].get("slices", {})})
    lines.append(f"  {'slice':<12} " + " ".join(f"{f:>8}" for f in forms))
    for s in [*slices, "overall"]:
        cells = [acc[f]["accuracy"] if s == "overall" else acc[f]["slices"].get(s, {}).get("accuracy") for f in forms]
        lines.append(f"  {s:<12} " + " ".join(f"{pc(c):>8}" for c in cells))
    for note in p.get("quantization_notes") or []:
        lines.append(f"  QLoRA: {note}")
    return lines
