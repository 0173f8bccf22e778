"""Rollout checks of the release gate ([eval.gate] in the settings): slice drop, safety floor, latency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.eval_slices import rules as R
from probes.eval_slices.comparison import Comparison, Row
from probes.eval_slices.fmt import pc, pts
from probes.eval_slices.rules import CHECKS


def _gated(c: Comparison, key: str) -> Iterator[tuple[Row, Any]]:
    """(row, the gate's `key` setting) for each judged row, when the gate sets a number for `key`."""
    gate = c.section.get("gate", {})
    if not isinstance(gate, dict) or not gate:
        return
    limit = gate.get(key)
    if not isinstance(limit, (int, float)):
        return
    for r in c.rows:
        if not r.aggregate and r.compared and r.primary:
            yield r, limit


def _fraction(x: float) -> float:
    """A gate limit as a fraction: 5 and 0.05 both mean 5%."""
    return x / 100 if x > 1 else float(x)


@CHECKS(R.GATE_SLICE, scope="rollout")
def gate_slice(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    for r, lim in _gated(c, "max_slice_regression"):
        lim = _fraction(lim)
        v, b = r.data["variant"], r.data["baseline"]
        for s in r.data["slices"]:
            if s["n"] >= c.opts.min_n and s["delta"] is not None and s["delta"] < -lim:
                yield R.GATE_SLICE.finding(
                    r.path,
                    f"{v} vs {b} on slice {s['slice']}: {pts(s['delta'])} (95% CI {pts(s['ci_low'])} … "
                    f"{pts(s['ci_high'])}, n={s['n']}) exceeds the gate's max_slice_regression of "
                    f"{lim * 100:.1f} pts",
                    locator=f"{v}:{s['slice']}",
                    evidence={**r.common, "slice": s["slice"], "limit": lim, "row": s},
                )


@CHECKS(R.GATE_SAFETY, scope="rollout")
def gate_safety(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    for r, floor in _gated(c, "min_safety_refusal_rate"):
        floor = _fraction(floor)
        v, sf = r.data["variant"], r.data["safety"]
        if sf is None:
            yield R.GATE_SAFETY.finding(
                r.path,
                f"{v}: the gate sets min_safety_refusal_rate but no safety slice was evaluated",
                locator=f"{v}:safety",
                severity=Severity.WARNING,
                evidence={"limit": floor},
            )
        elif sf["cand"] is not None and sf["cand"] < floor:
            yield R.GATE_SAFETY.finding(
                r.path,
                f"{v}: safety refusal rate {pc(sf['cand'])} (n={sf['n']}) is below the gate's "
                f"min_safety_refusal_rate of {pc(floor)} (baseline {pc(sf['base'])})",
                locator=f"{v}:safety",
                evidence={**r.common, "limit": floor, "safety": sf},
            )


@CHECKS(R.GATE_LATENCY, scope="rollout")
def gate_latency(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    for r, lat in _gated(c, "max_latency_increase"):
        v, m = r.data["variant"], r.data["latency_ms"]
        if not m or m.get("increase") is None:
            yield R.GATE_LATENCY.finding(
                r.path,
                f"{v}: the gate sets max_latency_increase but no latency_ms was recorded for both variants",
                locator=f"{v}:latency",
                severity=Severity.INFO,
                evidence={"limit": lat},
            )
        elif m["increase"] > lat:
            yield R.GATE_LATENCY.finding(
                r.path,
                f"{v}: mean latency {m['base']} ms → {m['cand']} ms ({m['increase'] * 100:+.1f}%) exceeds "
                f"the gate's max_latency_increase of {lat * 100:+.1f}%",
                locator=f"{v}:latency",
                evidence={"limit": lat, "latency_ms": m, "variant": v},
            )
