"""The eval-slice probe: reads each eval table once per scan, prepares the subjects its checks judge
(probes/eval_slices/checks/: one per rule) and publishes the comparisons for renderers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import probes.eval_slices.checks  # noqa: F401  (registers every check on CHECKS)
from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.rules import Rule
from doctor.core.session import ScanSession
from probes.eval_slices import comparison
from probes.eval_slices import rules as R
from probes.eval_slices.checks.table import TableReview
from probes.eval_slices.config import default_variant
from probes.eval_slices.rules import CHECKS

if TYPE_CHECKING:  # numpy and the readers load only when a rollout has an eval table
    from probes.eval_slices.evaltable import EvalTable

# What the scan publishes for renderers (ScanSession.derived → Report.derived): each eval table's comparison
# rows (variant vs baseline), keyed by the table's path; `comparison_table(report)` lists them.
DERIVED_KEY = "eval_comparisons"
# The session memo space of loaded tables: each file is read once per scan (check → check_rollout).
_TABLE_MEMO = "eval_slices.table"


def load(path: Path, default_variant: str | None, session: ScanSession) -> EvalTable:
    """The table of `path`, read once per scan (a rewritten file, new size or mtime, is read again)."""
    from probes.eval_slices.readers import read_table

    path = path.resolve()
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, default_variant)
    return session.memo(_TABLE_MEMO, key, lambda: read_table(path, default_variant))


def _facts(table: EvalTable) -> dict[str, Any]:
    import numpy as np

    facts: dict[str, Any] = {"format": table.fmt, "columns": table.columns}
    if table.metric != "score" or table.metrics:
        facts["metrics"] = [table.metric, *table.metrics]
    if table.scored_by:
        facts["scored_by"] = table.scored_by
    if table.aggregate is not None:
        facts.update(table.aggregate)
        return facts
    facts["rows"] = table.rows
    if not table.usable:
        return facts
    variants = {}
    for name, mask in table.variant_of_rows():
        sc = table.score if mask is None else table.score[mask]
        slc = table.slice_codes if mask is None else table.slice_codes[mask]
        ok = ~np.isnan(sc)
        n = np.bincount(slc[ok], minlength=len(table.slices))
        tot = np.bincount(slc[ok], weights=sc[ok], minlength=len(table.slices))
        variants[name] = {
            "rows": len(sc),
            "mean_score": round(float(sc[ok].mean()), 4) if ok.any() else None,
            "slices": {
                table.slices[k]: {"n": int(n[k]), "mean": round(float(tot[k] / n[k]), 4)} for k in np.flatnonzero(n)
            },
        }
    facts["variants"] = variants
    facts["optional_columns"] = sorted(table.extra)
    return facts


def is_slice_rule(rule: Rule) -> bool:
    """This probe's rules (the canary probe runs the rest of the family's checks)."""
    return not rule.has("canary")


class EvalSlicesProbe(Probe):
    name = "eval_slices"
    kinds = frozenset({"eval_table"})
    rules = R.SLICE_RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        dv = default_variant(artifact.path, ctx.rollout, ctx.section("eval"))
        table = load(artifact.path, dv, ctx.session)
        artifact.facts.update(_facts(table))
        return CHECKS.run("artifact", TableReview(artifact.path, table), ctx, applies=is_slice_rule)

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        arts = rollout.of_kind("eval_table")
        if not arts:
            return []
        section = ctx.section("eval")
        tables, art_of, fixed = [], {}, set()
        for a in arts:
            dv = default_variant(a.path, rollout, section)
            try:
                t = load(a.path, dv, ctx.session)
            except Exception:
                continue  # the artifact check reported it
            if t.usable or t.is_aggregate:
                tables.append(t)
                art_of[id(t)] = a
                if dv is not None:
                    fixed.add(id(t))
        if not tables:
            return []
        c = comparison.build(tables, rollout, ctx, fixed, art_of)
        published = ctx.session.derived.setdefault(DERIVED_KEY, {})
        for a in arts:
            published.pop(str(a.path), None)
        if c.base is not None:
            for a in arts:
                a.facts.pop("comparison", None)
            for row in c.rows:
                row.artifact.facts.setdefault("comparison", []).append(row.data)
                published.setdefault(str(row.artifact.path), []).append(row.data)
        return CHECKS.run("rollout", c, ctx, applies=is_slice_rule)


PROBES = [EvalSlicesProbe()]


def comparison_table(source: Any, settings: Any = None) -> list[dict[str, Any]]:
    """Every candidate variant vs the baseline (see `compare.compare` for the keys).

    `source` is a scan's `Report` (its published comparisons, in the report's artifact order: what
    `doctor check` compared), a Report's `derived` dict, or — a fresh comparison outside a scan — a
    `Rollout` or a list of eval-table paths / `EvalTable`s. Nothing is kept between calls.
    """
    derived = getattr(source, "derived", None)
    if isinstance(derived, Mapping):
        published = derived.get(DERIVED_KEY) or {}
        return [row for a in getattr(source, "artifacts", []) for row in published.get(str(a.path), [])]
    if isinstance(source, Mapping):
        return [row for rows in (source.get(DERIVED_KEY) or {}).values() for row in rows]
    from doctor.core.settings import Settings
    from probes.eval_slices.evaltable import EvalTable

    settings = settings or Settings()
    session = ScanSession()
    if isinstance(source, Rollout):
        rollout = source
        paths = [a.path for a in rollout.of_kind("eval_table")]
    else:
        items = list(source if not isinstance(source, (str, Path)) else [source])
        rollout = Rollout(Path.cwd())
        tables = [t for t in items if isinstance(t, EvalTable)]
        paths = [Path(p) for p in items if not isinstance(p, EvalTable)]
        return _table_from(tables + [load(p, None, session) for p in paths], rollout, settings)
    ctx = ProbeContext(settings=settings, rollout=rollout, session=session)
    section = ctx.section("eval")
    tables, fixed = [], set()
    for p in paths:
        dv = default_variant(p, rollout, section)
        t = load(p, dv, session)
        tables.append(t)
        if dv is not None:
            fixed.add(id(t))
    return _table_from(tables, rollout, settings, fixed)


def _table_from(
    tables: list[EvalTable], rollout: Rollout, settings: Any, fixed: set[int] | None = None
) -> list[dict[str, Any]]:
    """The same comparison `check_rollout` makes (pairing plan, paired rows, aggregate rows)."""
    tables = [t for t in tables if t.usable or t.is_aggregate]
    if not tables:
        return []
    ctx = ProbeContext(settings=settings, rollout=rollout)
    c = comparison.build(tables, rollout, ctx, fixed or set(), {id(t): None for t in tables})
    return [r.data for r in c.rows]


def to_markdown(table: list[dict[str, Any]]) -> str:
    """The comparison table as markdown (see `compare.to_markdown`)."""
    from probes.eval_slices.compare import to_markdown as md

    return md(table)


__all__ = ["PROBES", "comparison_table", "to_markdown"]
