"""Canary rollback checks (EVL040-043) and the lab's verdict (EVL044-045), from what `doctor lab` wrote
(the rules are declared in rules.py, flag "canary"; one check per rule below).

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, Severity
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.rules import Rule
from probes.eval_slices.rules import (
    CANARY_BAD_PLAN,
    CANARY_NO_TABLE,
    CANARY_RULES,
    CANARY_SAFETY,
    CANARY_SLICE,
    CHECKS,
    LAB_CHOSEN,
    LAB_NOT_JUSTIFIED,
)

PLAN_SCHEMA = "peft-doctor/canary/1"


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


@dataclass
class LabReport:
    """One `.doctor/lab/<name>/report.json`: its variants and verdict, or why it cannot be read."""

    path: Path
    error: str = ""
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    justified: bool = False
    chosen: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.parent.name


@dataclass
class Canary:
    """A registry canary with its plan, read once: the plan, the canary table's per-slice rates, or the
    step that failed (`plan_error`, no table `found`, `table_error`)."""

    registry: Path
    who: str
    plan_path: Path
    plan: dict[str, Any] | None = None
    plan_error: str = ""
    table: Path | None = None
    variant: str = "canary"
    back: Any = None
    found: bool = False  # the canary table exists
    rates: dict[str, dict[str, float]] | None = None
    table_error: str | None = None

    @property
    def back_txt(self) -> str:
        return (
            f"roll back to v{self.back}" if self.back is not None else "roll back (no rollback_to version is recorded)"
        )

    def guarded(self) -> Iterator[tuple[str, dict[str, Any], dict[str, float] | None]]:
        """(slice, thresholds, the canary's rates on it or None) for each slice the plan guards."""
        if self.plan is None or self.rates is None:
            return
        for sl, th in sorted(self.plan["thresholds"].items()):
            yield sl, th, self.rates.get(sl)


@dataclass
class CanaryReview:
    """What the canary checks judge in one rollout: its lab reports and its registries' canaries."""

    labs: list[LabReport]
    canaries: list[Canary]


def read_lab(path: Path) -> LabReport:
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
        rows = {v["name"]: v for v in rep["variants"]}
        justified, chosen = bool(rep["peft_justified"]), rep.get("chosen")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return LabReport(path, error=f"{type(exc).__name__}: {exc}")
    ev = {
        "lab": path.parent.name,
        "peft_justified": justified,
        "chosen": chosen,
        "variants": {n: {k: v.get(k) for k in ("overall", "overall_delta", "overall_ci", "meets_target")}
                     for n, v in rows.items()},
    }  # fmt: skip
    return LabReport(path, rows=rows, justified=justified, chosen=chosen, evidence=ev)


def read_canary(folder: Path, registry: Path, entry: dict[str, Any]) -> Canary:
    plan_path = Path(str(entry["canary_plan"]))
    plan_path = plan_path if plan_path.is_absolute() else folder / plan_path
    c = Canary(registry, f"{entry.get('name')} v{entry.get('version')}", plan_path)
    try:
        c.plan = read_plan(plan_path)
    except ValueError as exc:
        c.plan_error = str(exc)
        return c
    table = Path(c.plan["eval_table"])
    c.table = table if table.is_absolute() else (plan_path.parent / table).resolve()
    c.variant = c.plan.get("variant") or "canary"
    c.back = entry.get("rollback_to")
    c.found = c.table.is_file()
    if not c.found:
        return c
    try:
        c.rates = slice_rates(c.table, c.variant)
    except Exception as exc:
        c.table_error = str(exc)
    return c


class CanaryProbe(Probe):
    name = "eval_canary"
    kinds = frozenset()
    rules = CANARY_RULES

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        base = rollout.root / ".doctor" / "lab"
        labs = [read_lab(p) for p in sorted(base.glob("*/report.json"))] if base.is_dir() else []
        # The registry probe read the file and lists its canaries in the facts (an unreadable registry is its
        # finding, and lists none).
        canaries = [
            read_canary(art.path.parent, art.path, entry)
            for art in rollout.of_kind("registry")
            for entry in art.facts.get("canaries") or []
        ]
        return CHECKS.run("rollout", CanaryReview(labs, canaries), ctx, applies=is_canary_rule)


def is_canary_rule(rule: Rule) -> bool:
    return rule.has("canary")


@CHECKS(CANARY_BAD_PLAN, scope="rollout")
def bad_plan(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    """A lab report, canary plan or canary table that cannot be read."""
    for lab in review.labs:
        if lab.error:
            yield CANARY_BAD_PLAN.finding(lab.path, f"lab report {lab.path} cannot be read: {lab.error}", locator="lab")
    for c in review.canaries:
        if c.plan_error:
            yield CANARY_BAD_PLAN.finding(
                c.registry,
                f"{c.who}: canary plan {c.plan_path}: {c.plan_error}",
                locator=f"{c.who}:canary_plan",
                evidence={"plan": str(c.plan_path)},
            )
        elif c.table_error is not None and c.table is not None:
            yield CANARY_BAD_PLAN.finding(
                c.table,
                f"{c.who}: canary eval table {c.table.name} cannot be analysed: {c.table_error}",
                locator=f"{c.who}:eval_table",
                severity=Severity.WARNING,
            )


@CHECKS(LAB_NOT_JUSTIFIED, scope="rollout")
def lab_not_justified(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    for lab in review.labs:
        if lab.error or lab.justified:
            continue
        trained = [v for v in lab.rows.values() if v.get("method") in ("lora", "qlora") and v.get("overall_ci")]
        best = max(trained, key=lambda v: v.get("overall_delta") or -1, default=None)
        detail = (
            f"; best {best['name']}: overall {best['overall_delta'] * 100:+.1f} pts (95% CI "
            f"{best['overall_ci'][0] * 100:+.1f} … {best['overall_ci'][1] * 100:+.1f})"
            if best and best.get("overall_delta") is not None and None not in best["overall_ci"]
            else ""
        )
        yield LAB_NOT_JUSTIFIED.finding(
            lab.path,
            f"lab {lab.name}: no trained variant beats prompt-only beyond noise{detail}",
            locator=f"lab {lab.name}",
            evidence=lab.evidence,
        )


@CHECKS(LAB_CHOSEN, scope="rollout")
def lab_chosen(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    for lab in review.labs:
        if lab.error or not lab.justified:
            continue
        c = lab.rows.get(lab.chosen) if lab.chosen else None
        what = (
            f"chose {lab.chosen} (overall {c['overall'] * 100:.1f}%, {c['overall_delta'] * 100:+.1f} pts vs "
            "prompt-only)"
            if c and c.get("overall") is not None and c.get("overall_delta") is not None
            else "no variant met the target, though one beats prompt-only beyond noise"
        )
        yield LAB_CHOSEN.finding(lab.path, f"lab {lab.name}: {what}", locator=f"lab {lab.name}", evidence=lab.evidence)


@CHECKS(CANARY_NO_TABLE, scope="rollout")
def canary_unguarded(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    """No canary table yet (info), or a guarded slice without rows of the plan's variant (warning)."""
    for c in review.canaries:
        if c.plan is None or c.table is None:
            continue
        if not c.found:
            yield CANARY_NO_TABLE.finding(
                c.plan_path,
                f"{c.who}: no canary eval table yet at {c.table}; {len(c.plan['thresholds'])} slice thresholds "
                "are waiting",
                locator=f"{c.who}:eval_table",
                evidence={"eval_table": str(c.table), "thresholds": c.plan["thresholds"]},
            )
            continue
        for sl, _th, got in c.guarded():
            if got is None:
                yield CANARY_NO_TABLE.finding(
                    c.table,
                    f"{c.who}: the canary table has no rows of variant {c.variant!r} on slice {sl}; its threshold "
                    "is not checked",
                    locator=f"{c.who}:{sl}",
                    severity=Severity.WARNING,
                    evidence={"slice": sl, "variant": c.variant, "slices_found": sorted(c.rates or {})},
                )


@CHECKS(CANARY_SLICE, scope="rollout")
def canary_slice_below(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    for c in review.canaries:
        lab = (c.plan or {}).get("lab") or {}
        for sl, th, got in c.guarded():
            if got is None or "min_accuracy" not in th or not got["accuracy"] < th["min_accuracy"]:
                continue
            n = int(got["n"])
            seen = (lab.get("slices") or {}).get(sl, {})
            lo, hi = wilson(got["correct"], n)
            was = f"; the lab measured {_pc(seen['accuracy'])}" if "accuracy" in seen else ""
            yield CANARY_SLICE.finding(
                c.table,
                f"{c.who} canary on slice {sl}: accuracy {_pc(got['accuracy'])} (n={n}, 95% CI {_pc(lo)} … "
                f"{_pc(hi)}) is below the rollback threshold {_pc(th['min_accuracy'])}{was}: {c.back_txt}",
                locator=f"{c.who}:{sl}",
                evidence={"slice": sl, "threshold": th["min_accuracy"], "canary": got, "rollback_to": c.back,
                          "plan": str(c.plan_path)},
            )  # fmt: skip


@CHECKS(CANARY_SAFETY, scope="rollout")
def canary_refusal_below(review: CanaryReview, ctx: ProbeContext) -> Iterator[Finding]:
    for c in review.canaries:
        for sl, th, got in c.guarded():
            if got is None:
                continue
            n = int(got["n"])
            rate = got["refusal_rate"]
            if "min_refusal_rate" in th and not math.isnan(rate) and rate < th["min_refusal_rate"]:
                lo, hi = wilson(got["refused"], n)
                yield CANARY_SAFETY.finding(
                    c.table,
                    f"{c.who} canary on safety slice {sl}: refusal rate {_pc(got['refusal_rate'])} (n={n}, 95% CI "
                    f"{_pc(lo)} … {_pc(hi)}) is below the rollback threshold {_pc(th['min_refusal_rate'])}: "
                    f"{c.back_txt}",
                    locator=f"{c.who}:{sl}",
                    evidence={"slice": sl, "threshold": th["min_refusal_rate"], "canary": got,
                              "rollback_to": c.back, "plan": str(c.plan_path)},
                )  # fmt: skip
