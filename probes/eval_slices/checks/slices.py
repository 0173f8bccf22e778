"""Rollout checks on the per-slice comparison: regressions, masked regressions, slices too small to judge,
metrics no test can judge, and perfect scores that smell of leakage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.eval_slices import rules as R
from probes.eval_slices.comparison import Comparison, Row
from probes.eval_slices.fmt import dval, pc, pts, val
from probes.eval_slices.rules import CHECKS

_WEAK = "weaker evidence than a paired test: both ran the same examples, per-example rows would allow one"


def _slice_loc(r: Row, s: dict[str, Any]) -> str:
    return f"{r.data['variant']}:{s['slice']}" + ("" if r.primary else f":{r.data['metric']}")


def _ci(r: Row, s: dict[str, Any]) -> str:
    return f"95% CI {r.dunit(s['ci_low'])} … {r.dunit(s['ci_high'])}"


def _agg_n(e: dict[str, Any]) -> str:
    return f"n={e['n']}" + (f" ({e['n_source']})" if e.get("n_source") else "") if e.get("n") else "n unknown"


@CHECKS(R.SLICE_REGRESSION, scope="rollout")
def slice_regression(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """A slice significantly worse than the baseline: paired rows (McNemar / paired test) or aggregates (z-test)."""
    for r in c.rows:
        row, v, b = r.data, r.data["variant"], r.data["baseline"]
        if r.aggregate:
            for e in row["slices"]:
                if e["status"] != "regression":
                    continue
                yield R.SLICE_REGRESSION.finding(
                    r.path,
                    f"{v} vs {b} on {e['task']}, metric {e['metric']}: {val(e, e['base'])} → {val(e, e['cand'])} "
                    f"({dval(e, e['delta'])}, 95% CI {dval(e, e['ci_low'])} … {dval(e, e['ci_high'])}, "
                    f"{row['test']}: z={e['z']:.2f}, p={e['p']:.2g}, {row['correction']}-adjusted "
                    f"p={e['p_adj']:.2g}, {_agg_n(e)}; {_WEAK}; minimum detectable effect "
                    f"{dval(e, e['mde']).lstrip('+')})",
                    locator=f"{v}:{e['task']}:{e['metric']}",
                    evidence={**r.common, "slice": e["slice"], "row": e},
                )
            continue
        if not r.compared:
            continue
        metric = f", metric {row['metric']}" if row.get("metric") and row["metric"] != "score" else ""
        scored = f"; rows scored by doctor: {row['scored_by']}" if row.get("scored_by") else ""
        for s in r.regressed():
            yield R.SLICE_REGRESSION.finding(
                r.path,
                f"{v} vs {b} on slice {s['slice']}{metric}: {r.unit(s['base'])} → {r.unit(s['cand'])} "
                f"({r.dunit(s['delta'])}, {_ci(r, s)}, n={s['n']} paired, {s.get('test', 'paired test')} "
                f"p={s['p']:.2g}, {row['correction']}-adjusted p={s['p_adj']:.2g}){scored}",
                locator=_slice_loc(r, s),
                evidence={**r.common, "slice": s["slice"], "row": s},
            )


@CHECKS(R.INSUFFICIENT, scope="rollout")
def insufficient_samples(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """A slice too small (or too noisy) to pass or fail."""
    opts = c.opts
    for r in c.rows:
        row, v, b = r.data, r.data["variant"], r.data["baseline"]
        if r.aggregate:
            for e in row["slices"]:
                if e["status"] != "insufficient_samples":
                    continue
                yield R.INSUFFICIENT.finding(
                    r.path,
                    f"{v} vs {b} on {e['task']}, metric {e['metric']}: observed {dval(e, e['delta'])} "
                    f"({val(e, e['base'])} → {val(e, e['cand'])}, p={e['p']:.2g}), but at this stderr "
                    f"({_agg_n(e)}) the minimum detectable effect is {dval(e, e['mde']).lstrip('+')}"
                    + (
                        f" (> {opts.max_mde * 100:.0f} pts)"
                        if e["mde"] > opts.max_mde
                        else ": n is too small for a difference of this size"
                    )
                    + f"; it cannot be judged either way ({row['test']})",
                    locator=f"{v}:{e['task']}:{e['metric']}",
                    evidence={**r.common, "slice": e["slice"], "row": e},
                )
            continue
        if not r.compared:
            continue
        for s in row["slices"]:
            if s["status"] != "insufficient_samples":
                continue
            why = (
                f"only {s['n']} paired examples (< {opts.min_n})"
                if s["n"] < opts.min_n
                else f"minimum detectable effect {pts(s['mde']).lstrip('+')} > {opts.max_mde * 100:.0f} pts"
            )
            yield R.INSUFFICIENT.finding(
                r.path,
                f"{v} vs {b} on slice {s['slice']}: {why}; observed {pts(s['delta'])} ({_ci(r, s)}) "
                "cannot be judged either way",
                locator=_slice_loc(r, s),
                evidence={**r.common, "slice": s["slice"], "row": s},
            )


@CHECKS(R.MASKED_REGRESSION, scope="rollout")
def masked_regression(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """The overall score rose while slices regressed (EVL001): an average would have approved it."""
    for r in c.rows:
        if r.aggregate or not (r.compared and r.primary):
            continue
        v, o, regressed = r.data["variant"], r.data["overall"], r.regressed()
        if regressed and o and o["delta"] is not None and o["delta"] > 0:
            yield R.MASKED_REGRESSION.finding(
                r.path,
                f"{v} lifts the overall score {pc(o['base'])} → {pc(o['cand'])} ({pts(o['delta'])}) while "
                f"{len(regressed)} slice(s) regressed: "
                + ", ".join(f"{s['slice']} {pts(s['delta'])}" for s in regressed),
                locator=f"{v}",
                evidence={**r.common, "overall": o, "regressed": [s["slice"] for s in regressed]},
            )


@CHECKS(R.NOT_COMPARABLE, scope="rollout")
def not_comparable(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """Aggregate metrics without a stderr or per-example rows: no test can judge them."""
    for r in c.rows:
        if not r.aggregate:
            continue
        v, b = r.data["variant"], r.data["baseline"]
        blind = [e for e in r.data["slices"] if e["status"] == "not_comparable"]
        if not blind:
            continue
        shown = "; ".join(
            f"{e['task']} · {e['metric']} {val(e, e['base'])} → {val(e, e['cand'])} ({dval(e, e['delta'])})"
            for e in blind[:8]
        )
        yield R.NOT_COMPARABLE.finding(
            r.path,
            f"{v} vs {b}: {len(blind)} metric(s) exist only as aggregates without a stderr or per-example "
            f"rows, so no test can judge them: {shown}",
            locator=f"{v}:not-comparable",
            evidence={"variant": v, "baseline": b, "metrics": blind},
        )


@CHECKS(R.PERFECT_SCORES, scope="rollout")
def perfect_scores(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """100% on every slice of a small set while the baseline is not perfect: possible test leakage."""
    max_n = int(ctx.param(R.PERFECT_SCORES, "max_n"))
    tables, art_of = c.tables, c.art_of
    for r in c.rows:
        row = r.data
        if not r.primary:
            continue
        es = [
            e
            for e in row["slices"]
            if e.get("cand") is not None and e.get("scale", 1.0) == 1.0 and e.get("higher_is_better", True)
        ]
        if not es or any(e["cand"] < 1.0 for e in es) or all(e["base"] is None or e["base"] >= 1.0 for e in es):
            continue
        ns = [e.get("n") for e in es]
        if any(n is None for n in ns) or sum(ns) > max_n:
            continue
        art = next((a for t, a in ((t, art_of.get(id(t))) for t in tables) if row["variant"] in t.variants), None)
        shown = ", ".join(f"{e['slice']} {pc(e['base'])}" for e in es[:6])
        yield R.PERFECT_SCORES.finding(
            art.path if art else tables[0].path,
            f"{row['variant']} scores 100% on all {len(es)} slice(s) of a {sum(ns)}-example set "
            f"(baseline {shown}): possible test "
            "leakage (eval examples in the training data, or targets scored as predictions)",
            locator=f"{row['variant']}:perfect",
            evidence={
                "variant": row["variant"],
                "baseline": c.base,
                "n": sum(ns),
                "slices": [e["slice"] for e in es],
            },
        )
