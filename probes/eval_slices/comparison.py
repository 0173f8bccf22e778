"""A rollout's comparison, built once per scan: every candidate variant vs the baseline (paired per-example
rows, then aggregate-only metrics), the subject the rollout checks in probes/eval_slices/checks/ judge.

`build` is what `doctor check` compares (the probe) and what `comparison_table` computes outside a scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import Artifact
from doctor.core.probe import ProbeContext, Rollout
from probes.eval_slices import fmt
from probes.eval_slices.config import baseline_name, options

if TYPE_CHECKING:
    from probes.eval_slices.compare import Options
    from probes.eval_slices.evaltable import EvalTable
    from probes.eval_slices.pairing import Plan


@dataclass
class Row:
    """One comparison row (variant vs baseline on one metric/grouping, `compare.compare` keys) and what its
    findings share: the artifact they name and the slice chart every finding's evidence carries."""

    data: dict[str, Any]
    artifact: Artifact | None
    common: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any], artifact: Artifact | None) -> Row:
        v, b = data["variant"], data["baseline"]
        if data.get("source") == "aggregate":
            chart = [
                {k: e.get(k) for k in ("slice", "n", "base", "cand", "delta", "ci_low", "ci_high", "p", "p_adj")}
                for e in data["slices"]
                if e["status"] != "not_comparable"
            ]
            common = {"variant": v, "baseline": b, "slices": chart, "test": data["test"]}
        else:
            chart = [
                {k: s[k] for k in ("slice", "n", "base", "cand", "delta", "ci_low", "ci_high", "p", "p_adj")}
                for s in data["slices"]
            ]
            common = {"variant": v, "baseline": b, "slices": chart, "metric": data.get("metric")}
        return cls(data, artifact, common)

    @property
    def path(self) -> Path:
        assert self.artifact is not None, "a row outside a scan names no artifact"
        return self.artifact.path

    @property
    def aggregate(self) -> bool:
        return self.data.get("source") == "aggregate"

    @property
    def primary(self) -> bool:
        """The files' own scores and slices (further metrics/groupings of the same rows: slice findings only)."""
        return self.data.get("primary", True)

    @property
    def compared(self) -> bool:
        """A per-example row with at least one example paired (a row with none is only EVL008's)."""
        return not self.aggregate and self.data["paired"] > 0

    @property
    def scale(self) -> float:
        return self.data.get("scale") or 1.0

    def unit(self, x: float | None) -> str:
        return fmt.unit(x, self.scale)

    def dunit(self, x: float | None) -> str:
        return fmt.dunit(x, self.scale)

    def regressed(self) -> list[dict[str, Any]]:
        """Slices that regressed significantly (EVL001; the safety slice is EVL003's)."""
        return [s for s in self.data["slices"] if s["status"] == "regression" and not s["safety"]]


@dataclass
class Comparison:
    """The rollout subject: its usable tables after pairing, the baseline (None: nothing compared), the rows."""

    rollout: Rollout
    tables: list[EvalTable]
    art_of: dict[int, Artifact | None]
    plan: Plan
    names: list[str]
    explicit: str | None
    base: str | None
    section: dict[str, Any]
    opts: Options | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def where(self) -> Path:
        """Where rollout-wide findings go: the first table."""
        return self.tables[0].path

    @property
    def training_eval_only(self) -> bool:
        """One run whose only eval is a training run's own eval_loss: nothing to compare, nothing missing."""
        return len(self.names) == 1 and not self.explicit and all(trainer_eval_only(t) for t in self.tables)

    @property
    def ambiguous(self) -> bool:
        """No baseline named, and several runs look like one (EVL017 rather than EVL006)."""
        return not self.explicit and bool(self.plan.ambiguous and self.plan.evidence.get("baseline_like"))


def build(
    tables: list[EvalTable],
    rollout: Rollout,
    ctx: ProbeContext,
    fixed: set[int],
    art_of: dict[int, Artifact | None],
) -> Comparison:
    """Pair the tables (pairing plan), pick the baseline and compare every candidate with it."""
    from probes.eval_slices.compare import pick_baseline
    from probes.eval_slices.pairing import plan as plan_pairs

    section = ctx.section("eval")
    plan = plan_pairs(tables, rollout.root, fixed)
    art_of = {id(new): art_of[id(old)] for old, new in zip(tables, plan.tables)}
    tables = plan.tables
    names = sorted({v for t in tables for v in t.variants})
    explicit = baseline_name(rollout, section)
    # an exact `base`/`baseline`/`prompt_only` name first (as before), then the one base-like name
    base = pick_baseline(names, explicit) if explicit else (pick_baseline(names, None) or plan.baseline)
    c = Comparison(rollout, tables, art_of, plan, names, explicit, base, section)
    if base is None:
        return c
    c.opts = options(ctx, rollout)
    data = paired_rows(tables, base, c.opts, art_of, plan.how) + aggregate_rows(tables, base, c.opts, art_of, plan.how)
    c.rows = [Row.of(d, d.pop("_artifact")) for d in data]
    return c


def trainer_eval_only(t: EvalTable) -> bool:
    """A Trainer metrics file holding only the in-training eval split (eval_loss, …), no predict run."""
    return t.fmt == "llama_factory_results" and set((t.aggregate or {}).get("splits", {})) <= {"eval"}


def paired_rows(
    tables: list[EvalTable], base: str, opts: Options, art_of: dict[int, Artifact], how: str
) -> list[dict[str, Any]]:
    """Per-example comparisons: the files' own scores, then each further metric they all carry."""
    from probes.eval_slices.compare import compare, pair

    per_ex = [t for t in tables if t.usable]
    if not per_ex:
        return []
    runs: list[tuple[str | None, str | None, list[EvalTable]]] = [(None, None, per_ex)]
    for m in sorted({m for t in per_ex for m in t.metrics}):
        runs.append((m, None, [_copy(t, t.with_metric(m), art_of) for t in per_ex if m in t.metrics]))
    for g in sorted({g for t in per_ex for g in t.groupings}):
        runs.append((None, g, [_copy(t, t.with_grouping(g), art_of) for t in per_ex if g in t.groupings]))
    rows = []
    for metric, grouping, ts in runs:
        pairing = pair(ts)
        if base not in pairing.variants or len(pairing.variants) < 2:
            continue
        for row in compare(pairing, base, opts):
            srcs = pairing.variants[row["variant"]].sources
            row["metric"] = metric or ", ".join(sorted({t.metric for t in srcs}))
            row["scale"] = next((t.metric_scales[row["metric"]] for t in srcs if row["metric"] in t.metric_scales), 1.0)
            row["source"] = "per_example"
            row["primary"] = metric is None and grouping is None
            row["grouping"] = grouping
            row["pairing"] = how
            row["scored_by"] = "; ".join(sorted({t.scored_by for t in srcs if t.scored_by}))
            row["_artifact"] = art_of[id(srcs[0])]
            rows.append(row)
    return rows


def _copy(t: EvalTable, c: EvalTable, art_of: dict[int, Artifact]) -> EvalTable:
    art_of[id(c)] = art_of[id(t)]
    return c


def aggregate_rows(
    tables: list[EvalTable], base: str, opts: Options, art_of: dict[int, Artifact], how: str
) -> list[dict[str, Any]]:
    """Aggregate-only metrics (no per-example rows for them on both sides): unpaired z-test."""
    from probes.eval_slices.aggregate import Z_TEST, compare_aggregates

    by_var: dict[str, list[EvalTable]] = {}
    for t in tables:
        for v in t.variants:
            by_var.setdefault(v, []).append(t)

    def metrics_of(v: str) -> tuple[list[Any], set[tuple[str, str]]]:
        seen: dict[tuple[str, str], Any] = {}
        covered: set[tuple[str, str]] = set()
        for t in by_var.get(v, []):
            covered |= t.covers
            for m in t.aggregates:
                if m.variant is not None and m.variant != v:
                    continue
                k = (m.task, m.metric)
                if k not in seen or (seen[k].stderr is None and m.stderr is not None):
                    seen[k] = m
        return list(seen.values()), covered

    b_metrics, b_cov = metrics_of(base)
    if not b_metrics:
        return []
    rows = []
    for v in sorted(by_var):
        if v == base:
            continue
        c_metrics, c_cov = metrics_of(v)
        if not c_metrics:
            continue
        entries, only_b, only_c = compare_aggregates(
            b_metrics,
            c_metrics,
            alpha=opts.alpha,
            power=opts.power,
            min_effect=opts.min_effect,
            max_mde=opts.max_mde,
            correction=opts.correction,
            skip=b_cov & c_cov,
        )
        if not entries and not only_b and not only_c:
            continue
        src = next(t for t in by_var[v] if t.aggregates)
        rows.append(
            {
                "variant": v,
                "baseline": base,
                "source": "aggregate",
                "test": Z_TEST,
                "metric": ", ".join(sorted({e["metric"] for e in entries})),
                "pairing": how,
                "paired": 0,
                "only_baseline": 0,
                "only_candidate": 0,
                "unpaired_examples": {"baseline": [], "candidate": []},
                "unusable_pairs": 0,
                "slice_mismatch": 0,
                "overall": None,
                "slices": entries,
                "baseline_only_slices": only_b,
                "candidate_only_slices": only_c,
                "safety": None,
                "over_refusal": None,
                "latency_ms": None,
                "vram_mb": None,
                "throughput": None,
                "correction": opts.correction,
                "alpha": opts.alpha,
                "_artifact": art_of[id(src)],
            }
        )
    return rows
