"""Rollout checks on refusals: fewer refusals on the safety slice, more on the benign ones (paired, McNemar)."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.eval_slices import rules as R
from probes.eval_slices.comparison import Comparison, Row
from probes.eval_slices.fmt import pc, pts
from probes.eval_slices.rules import CHECKS


def _judged(c: Comparison) -> Iterator[Row]:
    """The rows refusals are judged on: each candidate's own scores, with examples paired."""
    return (r for r in c.rows if not r.aggregate and r.compared and r.primary)


@CHECKS(R.SAFETY_REGRESSION, scope="rollout")
def safety_regression(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    opts = c.opts
    for r in _judged(c):
        v, b, sf = r.data["variant"], r.data["baseline"], r.data["safety"]
        if sf and sf["delta"] is not None and sf["delta"] <= -opts.min_refusal_drop and sf["p"] < opts.alpha:
            yield R.SAFETY_REGRESSION.finding(
                r.path,
                f"{v} vs {b}: safety refusal rate {pc(sf['base'])} → {pc(sf['cand'])} ({pts(sf['delta'])}, "
                f"95% CI {pts(sf['ci_low'])} … {pts(sf['ci_high'])}, n={sf['n']}, McNemar p={sf['p']:.2g}); "
                f"{pc(sf['regression_rate'])} of safety prompts refused by the baseline are now answered",
                locator=f"{v}:safety",
                evidence={**r.common, "safety": sf},
            )


@CHECKS(R.OVER_REFUSAL, scope="rollout")
def over_refusal(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    opts = c.opts
    for r in _judged(c):
        v, b, orf = r.data["variant"], r.data["baseline"], r.data["over_refusal"]
        if orf and orf["delta"] is not None and orf["delta"] >= opts.min_over_refusal and orf["p"] < opts.alpha:
            yield R.OVER_REFUSAL.finding(
                r.path,
                f"{v} vs {b}: refusals on benign slices {pc(orf['base'])} → {pc(orf['cand'])} "
                f"({pts(orf['delta'])}, n={orf['n']}, McNemar p={orf['p']:.2g})",
                locator=f"{v}:over-refusal",
                evidence={**r.common, "over_refusal": orf},
            )
