"""CFG rules over a normalized recipe (see recipe.py). Returns (rule, message, evidence, severity)."""

from __future__ import annotations

from typing import Any

from probes.training.lrranges import lr_range
from probes.training.rules import (
    CFG_DTYPE,
    CFG_LR,
    CFG_NO_CLIP,
    CFG_PRECISION,
    CFG_QUANT,
    CFG_QUANT_ADAPTER,
    CFG_WARMUP,
)


def check_recipe(r: dict[str, Any], param) -> list[tuple]:
    out: list[tuple] = []
    method = r.get("method", "lora")
    lr = r.get("learning_rate")
    if isinstance(lr, (int, float)):
        rng = lr_range(r, param, CFG_LR)
        limit = rng.alarm
        if lr > limit:
            out.append(
                (
                    CFG_LR,
                    f"learning_rate {lr:g} is {lr / limit:.1f}x the alarm level {limit:g} for {rng.what} "
                    f"({rng.says()})",
                    {
                        "learning_rate": lr,
                        "threshold": limit,
                        "method": method,
                        "range": [rng.lo, rng.hi],
                        "judged_as": rng.what,
                        "source": rng.source,
                    },
                    "error" if lr > 10 * limit else None,
                )
            )
        wr, ws = r.get("warmup_ratio"), r.get("warmup_steps")
        set_fields = [(k, v) for k, v in (("warmup_ratio", wr), ("warmup_steps", ws)) if v is not None]
        if lr > param(CFG_WARMUP, "min_lr") and set_fields and not (wr or ws):
            out.append(
                (
                    CFG_WARMUP,
                    f"no warmup ({', '.join(f'{k}={v}' for k, v in set_fields)}) at learning_rate {lr:g} "
                    f"(threshold {param(CFG_WARMUP, 'min_lr'):g})",
                    {"learning_rate": lr, "warmup_ratio": wr, "warmup_steps": ws},
                    None,
                )
            )
    four = bool(r.get("load_in_4bit")) or method == "qlora"
    cd = r.get("compute_dtype")
    if four and (cd == "float16" or r.get("fp16") is True):
        why = "bnb_4bit_compute_dtype=float16" if cd == "float16" else "fp16=True"
        out.append(
            (
                CFG_PRECISION,
                f"QLoRA (4-bit) trained with {why}: fp16 overflow makes 4-bit runs unstable",
                {"compute_dtype": cd, "fp16": r.get("fp16"), "bf16": r.get("bf16")},
                None,
            )
        )
    elif r.get("fp16") is True:
        out.append(
            (
                CFG_PRECISION,
                "fp16 AMP (fp16=True): overflow risk; bf16 is safer where supported",
                {"fp16": True},
                "info",
            )
        )
    if r.get("load_in_4bit"):
        qt, dq = r.get("quant_type"), r.get("double_quant")
        bad = []
        if qt is not None and qt != "nf4":
            bad.append(f"bnb_4bit_quant_type={qt} (QLoRA uses nf4)")
        if dq is False:
            bad.append("bnb_4bit_use_double_quant=False (QLoRA uses double quantization)")
        if bad:
            out.append((CFG_QUANT, "4-bit config: " + "; ".join(bad), {"quant_type": qt, "double_quant": dq}, None))
    if cd in ("float16", "bfloat16"):
        if cd == "float16" and r.get("bf16") is True:
            out.append(
                (CFG_DTYPE, "bnb_4bit_compute_dtype=float16 while bf16=True", {"compute_dtype": cd, "bf16": True}, None)
            )
        elif cd == "bfloat16" and r.get("fp16") is True:
            out.append(
                (
                    CFG_DTYPE,
                    "bnb_4bit_compute_dtype=bfloat16 while fp16=True",
                    {"compute_dtype": cd, "fp16": True},
                    None,
                )
            )
    adapter = r.get("adapter")
    if r.get("flavour") == "axolotl":
        if (r.get("load_in_4bit") or r.get("load_in_8bit")) and not adapter:
            out.append(
                (
                    CFG_QUANT_ADAPTER,
                    "load_in_4bit/8bit without an adapter: a quantized base cannot be fully fine-tuned",
                    {"adapter": None},
                    None,
                )
            )
        if adapter == "qlora" and (not r.get("load_in_4bit") or r.get("load_in_8bit")):
            out.append(
                (
                    CFG_QUANT_ADAPTER,
                    f"adapter: qlora with load_in_4bit={r.get('load_in_4bit')} load_in_8bit={r.get('load_in_8bit')}",
                    {"load_in_4bit": r.get("load_in_4bit"), "load_in_8bit": r.get("load_in_8bit")},
                    None,
                )
            )
    if "max_grad_norm" in r and not r["max_grad_norm"]:
        out.append(
            (
                CFG_NO_CLIP,
                f"max_grad_norm={r['max_grad_norm']}: gradient clipping is off",
                {"max_grad_norm": r["max_grad_norm"]},
                None,
            )
        )
    return out
