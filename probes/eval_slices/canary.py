"""Canary rollback rules (EVL040-043) and the lab's verdict (EVL044-045), from what `doctor lab` wrote.

EVL044/EVL045: the rollout's `.doctor/lab/*/report.json` (docs/lab.md) — PEFT not justified, or the chosen
variant — evidence the adaptation-path playbook branches on.

The canary: a canary eval table read against the plan `doctor lab` registered.

A registry entry with `status: canary` and a `canary_plan` (a JSON file, schema `peft-doctor/canary/1`,
path relative to the registry file; docs/lab.md) names the canary's eval table and its rollback thresholds:

```json
{"schema": "peft-doctor/canary/1", "adapter": "support-bot", "version": 3, "variant": "canary",
 "eval_table": "../eval/canary-support-bot-v3.csv",
 "thresholds": {"arithmetic": {"min_accuracy": 0.615}, "safety": {"min_refusal_rate": 0.963}}}
```

`eval_table` is relative to the plan file. The table has the eval-table format (docs/formats.md); when
it has a variant column, only the rows of the plan's `variant` count. A slice whose accuracy (mean score)
is below its `min_accuracy`, or a safety slice whose refusal rate (the `refused` column, else the score)
is below its `min_refusal_rate`, is a rollback recommendation (error). Light module: numpy and the
readers load only when a plan is found.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, Severity
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.rules import rule

PLAN_SCHEMA = "peft-doctor/canary/1"

CANARY_SLICE = rule(
    "EVL040",
    "Canary crossed a rollback threshold",
    "error",
    ["slice_regression"],
    """
    The canary's eval table scores a slice below the rollback threshold of its canary plan. `doctor lab`
    derives each threshold from the lab's own intervals for the chosen variant: the lower of (prompt-only
    accuracy + the lower 95% bound of the paired gain) and the lower 95% Wilson bound of the variant's
    accuracy, so sampling noise alone does not trigger a rollback while a drop the lab never saw does.
    """,
    """
    Roll back: set the canary's status to rejected/retired and serve its `rollback_to` version, then look at
    what differs between the lab and the canary traffic (prompt format, slice mix, serving path).
    """,
)
CANARY_SAFETY = rule(
    "EVL041",
    "Canary refusal rate below the safety rollback threshold",
    "error",
    ["safety_regression"],
    """
    On a safety slice the canary refuses fewer harmful prompts than the canary plan's `min_refusal_rate`
    (from the lab's refusal interval for the chosen variant). Refusals come from the `refused` column when
    the table has one, else from the slice's score (refusal scorer).
    """,
    "Roll back to the `rollback_to` version now; re-run the lab with refusal data in the training mix.",
)
CANARY_NO_TABLE = rule(
    "EVL042",
    "Canary plan without canary results",
    "info",
    [],
    """
    A canary version has a canary plan, but its eval table does not exist yet (info), or it lacks a slice the
    plan has a threshold for, or has no rows of the plan's variant (warning): that slice is not guarded.
    """,
    "Evaluate the canary on the lab's eval set and write the table where the plan's `eval_table` says.",
)
CANARY_BAD_PLAN = rule(
    "EVL043",
    "Canary plan unreadable",
    "warning",
    ["input_unreadable"],
    "A registry entry names a canary plan that is missing, not JSON, or not a peft-doctor/canary/1 plan.",
    "Re-run `doctor lab run` (it writes the plan) or fix the `canary_plan` path in the registry.",
)

LAB_NOT_JUSTIFIED = rule(
    "EVL044",
    "Lab: PEFT not justified",
    "info",
    [],
    """
    The rollout's last `doctor lab` run (`.doctor/lab/<name>/report.json`) found no trained variant whose
    overall paired 95% interval against the prompt-only baseline lies above zero: at this budget and eval
    set, LoRA and QLoRA do not beat prompting beyond noise. The adaptation-path playbook reads this as
    "prompt optimization has not plateaued".
    """,
    "Keep improving the prompt (template, few-shot examples); re-run the lab with more data or steps to look again.",
)
LAB_CHOSEN = rule(
    "EVL045",
    "Lab: a trained variant beats prompt-only",
    "info",
    [],
    """
    The rollout's last `doctor lab` run found a trained variant that beats the prompt-only baseline beyond
    noise; the message names the chosen variant (the smallest rank meeting the target) and its numbers. The
    adaptation-path playbook reads this as evidence that prompting plateaued below what an adapter reaches.
    """,
    "Ship the chosen variant as the canary the lab registered; `doctor check` then guards it (EVL040/EVL041).",
)

RULES = (CANARY_SLICE, CANARY_SAFETY, CANARY_NO_TABLE, CANARY_BAD_PLAN, LAB_NOT_JUSTIFIED, LAB_CHOSEN)


def wilson(k: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _pc(x: float) -> str:
    return f"{x * 100:.1f}%"


def read_plan(path: Path) -> dict[str, Any]:
    """A validated canary plan; ValueError with the reason otherwise."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(plan, dict) or plan.get("schema") != PLAN_SCHEMA:
        raise ValueError(f"not a canary plan (schema {PLAN_SCHEMA} expected)")
    th = plan.get("thresholds")
    if not isinstance(th, dict) or not all(isinstance(v, dict) for v in th.values()):
        raise ValueError("thresholds: expected {slice: {min_accuracy | min_refusal_rate: number}}")
    for sl, t in th.items():
        for k, v in t.items():
            if k not in ("min_accuracy", "min_refusal_rate") or not isinstance(v, (int, float)):
                raise ValueError(f"thresholds.{sl}.{k}: expected min_accuracy or min_refusal_rate with a number")
    if not isinstance(plan.get("eval_table"), str):
        raise ValueError("eval_table: expected the path of the canary's eval table")
    return plan


def slice_rates(table_path: Path, variant: str | None) -> dict[str, dict[str, float]]:
    """{slice: {n, accuracy, refusal_rate}} from an eval table (rows of `variant` when it has a variant column)."""
    import numpy as np

    from probes.eval_slices.readers import read_table

    t = read_table(table_path, variant)
    if not t.usable:
        msg = "; ".join(p.message for p in t.problems if p.fatal) or "not a per-example eval table"
        raise ValueError(msg)
    mask = None
    if t.variant_codes is not None:
        if variant in t.variants:
            mask = t.variant_codes == t.variants.index(variant)
        elif len(t.variants) == 1:
            mask = None
        else:
            return {}
    sc = t.score if mask is None else t.score[mask]
    sl = t.slice_codes if mask is None else t.slice_codes[mask]
    ref = t.extra.get("refused")
    ref = None if ref is None else (ref if mask is None else ref[mask])
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(t.slices):
        rows = (sl == k) & ~np.isnan(sc)
        n = int(rows.sum())
        if not n:
            continue
        r = ref[rows] if ref is not None and not np.isnan(ref[rows]).all() else sc[rows]
        r = r[~np.isnan(r)]
        out[name] = {
            "n": n,
            "accuracy": float(sc[rows].mean()),
            "refusal_rate": float((r > 0.5).mean()) if r.size else float("nan"),
            "refused": int((r > 0.5).sum()),
            "correct": float(sc[rows].sum()),
        }
    return out


class CanaryProbe(Probe):
    name = "eval_canary"
    kinds = frozenset()
    rules = RULES

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        out: list[Finding] = list(self._labs(rollout))
        for art in rollout.of_kind("registry"):
            # The registry probe read the file and lists its canaries in the facts (an unreadable registry is
            # its finding, and lists none).
            for entry in art.facts.get("canaries") or []:
                out.extend(self._entry(art.path.parent, art.path, entry))
        return out

    def _labs(self, rollout: Rollout) -> Iterable[Finding]:
        """One EVL044/EVL045 finding per lab report of the rollout (its `.doctor/lab/*/report.json`)."""
        base = rollout.root / ".doctor" / "lab"
        if not base.is_dir():
            return
        for path in sorted(base.glob("*/report.json")):
            try:
                rep = json.loads(path.read_text(encoding="utf-8"))
                rows = {v["name"]: v for v in rep["variants"]}
                justified, chosen = bool(rep["peft_justified"]), rep.get("chosen")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                yield CANARY_BAD_PLAN.finding(
                    path, f"lab report {path} cannot be read: {type(exc).__name__}: {exc}", locator="lab"
                )
                continue
            trained = [v for v in rows.values() if v.get("method") in ("lora", "qlora") and v.get("overall_ci")]
            ev = {
                "lab": path.parent.name,
                "peft_justified": justified,
                "chosen": chosen,
                "variants": {n: {k: v.get(k) for k in ("overall", "overall_delta", "overall_ci", "meets_target")}
                             for n, v in rows.items()},
            }  # fmt: skip
            if not justified:
                best = max(trained, key=lambda v: v.get("overall_delta") or -1, default=None)
                detail = (
                    f"; best {best['name']}: overall {best['overall_delta'] * 100:+.1f} pts (95% CI "
                    f"{best['overall_ci'][0] * 100:+.1f} … {best['overall_ci'][1] * 100:+.1f})"
                    if best and best.get("overall_delta") is not None and None not in best["overall_ci"]
                    else ""
                )
                yield LAB_NOT_JUSTIFIED.finding(
                    path,
                    f"lab {path.parent.name}: no trained variant beats prompt-only beyond noise{detail}",
                    locator=f"lab {path.parent.name}",
                    evidence=ev,
                )
            else:
                c = rows.get(chosen) if chosen else None
                what = (
                    f"chose {chosen} (overall {c['overall'] * 100:.1f}%, {c['overall_delta'] * 100:+.1f} pts vs "
                    "prompt-only)"
                    if c and c.get("overall") is not None and c.get("overall_delta") is not None
                    else "no variant met the target, though one beats prompt-only beyond noise"
                )
                yield LAB_CHOSEN.finding(path, f"lab {path.parent.name}: {what}", locator=f"lab {path.parent.name}",
                                         evidence=ev)  # fmt: skip

    def _entry(self, folder: Path, registry: Path, entry: dict[str, Any]) -> Iterable[Finding]:
        who = f"{entry.get('name')} v{entry.get('version')}"
        plan_path = Path(str(entry["canary_plan"]))
        plan_path = plan_path if plan_path.is_absolute() else folder / plan_path
        try:
            plan = read_plan(plan_path)
        except ValueError as exc:
            yield CANARY_BAD_PLAN.finding(
                registry,
                f"{who}: canary plan {plan_path}: {exc}",
                locator=f"{who}:canary_plan",
                evidence={"plan": str(plan_path)},
            )
            return
        table = Path(plan["eval_table"])
        table = table if table.is_absolute() else (plan_path.parent / table).resolve()
        variant = plan.get("variant") or "canary"
        back = entry.get("rollback_to")
        back_txt = f"roll back to v{back}" if back is not None else "roll back (no rollback_to version is recorded)"
        if not table.is_file():
            yield CANARY_NO_TABLE.finding(
                plan_path,
                f"{who}: no canary eval table yet at {table}; {len(plan['thresholds'])} slice thresholds are waiting",
                locator=f"{who}:eval_table",
                evidence={"eval_table": str(table), "thresholds": plan["thresholds"]},
            )
            return
        try:
            rates = slice_rates(table, variant)
        except Exception as exc:
            yield CANARY_BAD_PLAN.finding(
                table,
                f"{who}: canary eval table {table.name} cannot be analysed: {exc}",
                locator=f"{who}:eval_table",
                severity=Severity.WARNING,
            )
            return
        lab = plan.get("lab") or {}
        for sl, th in sorted(plan["thresholds"].items()):
            got = rates.get(sl)
            if got is None:
                yield CANARY_NO_TABLE.finding(
                    table,
                    f"{who}: the canary table has no rows of variant {variant!r} on slice {sl}; its threshold "
                    "is not checked",
                    locator=f"{who}:{sl}",
                    severity=Severity.WARNING,
                    evidence={"slice": sl, "variant": variant, "slices_found": sorted(rates)},
                )
                continue
            n = int(got["n"])
            seen = (lab.get("slices") or {}).get(sl, {})
            if "min_accuracy" in th and got["accuracy"] < th["min_accuracy"]:
                lo, hi = wilson(got["correct"], n)
                was = f"; the lab measured {_pc(seen['accuracy'])}" if "accuracy" in seen else ""
                yield CANARY_SLICE.finding(
                    table,
                    f"{who} canary on slice {sl}: accuracy {_pc(got['accuracy'])} (n={n}, 95% CI {_pc(lo)} … "
                    f"{_pc(hi)}) is below the rollback threshold {_pc(th['min_accuracy'])}{was}: {back_txt}",
                    locator=f"{who}:{sl}",
                    evidence={"slice": sl, "threshold": th["min_accuracy"], "canary": got, "rollback_to": back,
                              "plan": str(plan_path)},
                )  # fmt: skip
            rate = got["refusal_rate"]
            if "min_refusal_rate" in th and not math.isnan(rate) and rate < th["min_refusal_rate"]:
                lo, hi = wilson(got["refused"], n)
                yield CANARY_SAFETY.finding(
                    table,
                    f"{who} canary on safety slice {sl}: refusal rate {_pc(got['refusal_rate'])} (n={n}, 95% CI "
                    f"{_pc(lo)} … {_pc(hi)}) is below the rollback threshold {_pc(th['min_refusal_rate'])}: "
                    f"{back_txt}",
                    locator=f"{who}:{sl}",
                    evidence={"slice": sl, "threshold": th["min_refusal_rate"], "canary": got,
                              "rollback_to": back, "plan": str(plan_path)},
                )  # fmt: skip
