"""Learning-rate fixes bounded by the usual range of the method, scaled by how far the evidence is off.

A playbook says *lower the rate* (`learning_rate: x0.5`); this module decides *to what*: the proposed
value is brought inside the method's usual range, and a recorded rate above the top of that range is
taken back to the top in one step (a rate 100x too high is not halved into another diverging run).
Light module (no torch): spec building and the fix loop use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The usual ranges are probes.training.lrranges' (the table CFG001/TRN007 judge against, with sources):
# LoRA/QLoRA SFT 5e-6..2e-4, DPO-style with LoRA 5e-6..5e-5; optimizer families (Lion, SGD, Muon) shift them.
DPO_STYLE = frozenset({"dpo", "ipo", "kto", "orpo", "simpo", "cpo"})


@dataclass(frozen=True)
class LrFix:
    recorded: float | None
    proposed: float | None  # what the playbook's override alone gives
    value: float  # what the job uses
    method: str
    why: str


def method_family(method: str | None, recipe: dict[str, Any] | None = None) -> str:
    """lora | qlora | dpo for a rollout method and recipe (a preference loss or beta means DPO-style)."""
    recipe = recipe or {}
    m = (method or "").lower()
    loss = str(recipe.get("loss_type") or recipe.get("trainer") or recipe.get("stage") or "").lower()
    if m in DPO_STYLE or loss in DPO_STYLE or "beta" in recipe:
        return "dpo"
    if m == "qlora" or (recipe.get("quantization") or {}).get("load_in_4bit"):
        return "qlora"
    return "lora"


def usual_range(method: str, recipe: dict[str, Any] | None = None) -> tuple[float, float, str]:
    """(lo, hi, what) for a method family (lora | qlora | dpo) and the recipe's optimizer."""
    from probes.training.lrranges import lr_range

    r = dict(recipe or {})
    probe_recipe = {
        "method": "qlora" if method == "qlora" else "lora",
        "stage": "dpo" if method == "dpo" else r.get("stage") or "sft",
        "optim": r.get("optim"),
    }
    rng = lr_range(probe_recipe, lambda _rule, _name: float("inf"), None)
    return rng.lo, rng.hi, rng.what


METHOD_RANGES: dict[str, tuple[float, float]] = {
    m: usual_range(m)[:2] for m in ("lora", "qlora", "dpo")
}  # the AdamW ranges, for tests and docs


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v > 0 else None


def bound_lr(recorded: Any, proposed: Any, method: str, recipe: dict[str, Any] | None = None) -> LrFix:
    """The learning rate a corrective job uses: inside the method's usual range (for the recipe's optimizer),
    never above the recorded one unless the recorded one is below the range.

    - recorded above the range's top (k times): the top — the evidence says the rate is k times too high,
      so a fixed factor (x0.5) would leave it far out of range;
    - otherwise the proposed value (the playbook's factor), clamped into the range.
    """
    lo, hi, _what = usual_range(method, recipe)
    rec, prop = _num(recorded), _num(proposed)
    if prop is None:
        prop = rec
    if rec is not None and rec > hi:
        k = rec / hi
        value = hi if prop is None or prop >= hi else max(prop, lo)
        why = f"learning_rate {rec:g} is {k:.0f}x the top of the usual {method} range ({lo:g}..{hi:g}): {value:g}"
    elif prop is None:
        value = hi
        why = f"no recorded learning_rate: the top of the usual {method} range, {hi:g}"
    else:
        value = min(max(prop, lo), hi)
        if value != prop:
            why = f"{prop:g} is outside the usual {method} range ({lo:g}..{hi:g}): {value:g}"
        else:
            why = f"{rec:g} → {value:g} (inside the usual {method} range {lo:g}..{hi:g})" if rec else f"{value:g}"
    return LrFix(rec, _num(proposed), float(value), method, why)


def in_range(value: float, method: str, recipe: dict[str, Any] | None = None) -> bool:
    lo, hi, _what = usual_range(method, recipe)
    return lo <= value <= hi
