"""The eval-slice probe: per-file validation in `check`, cross-file pairing and statistics in `check_rollout`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.manifest import resolve
from doctor.core.model import Artifact, Finding, Severity
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.safeio import loads_json
from doctor.core.session import ScanSession
from probes.eval_slices import rules as R

if TYPE_CHECKING:  # numpy and the readers load only when a rollout has an eval table
    from probes.eval_slices.compare import Options
    from probes.eval_slices.evaltable import EvalTable, Problem

# What the scan publishes for renderers (ScanSession.derived → Report.derived): each eval table's comparison
# rows (variant vs baseline), keyed by the table's path; `comparison_table(report)` lists them.
DERIVED_KEY = "eval_comparisons"
# The session memo space of loaded tables: each file is read once per scan (check → check_rollout).
_TABLE_MEMO = "eval_slices.table"

_PROBLEM_RULE = {
    "missing_columns": R.MALFORMED,
    "bad_lines": R.MALFORMED,
    "duplicate_ids": R.DUPLICATE_IDS,
    "bad_scores": R.BAD_SCORES,
    "mixed_types": R.BAD_SCORES,
    "empty_slice": R.EMPTY_SLICE,
}


def load(path: Path, default_variant: str | None, session: ScanSession) -> EvalTable:
    """The table of `path`, read once per scan (a rewritten file, new size or mtime, is read again)."""
    from probes.eval_slices.readers import read_table

    path = path.resolve()
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, default_variant)
    return session.memo(_TABLE_MEMO, key, lambda: read_table(path, default_variant))


def _eval_section(ctx_or_none: ProbeContext | None) -> dict[str, Any]:
    return ctx_or_none.section("eval") if ctx_or_none is not None else {}


def _manifest_eval(rollout: Rollout) -> dict[str, Any]:
    ev = rollout.manifest.get("eval", {}) if rollout.manifest else {}
    return ev if isinstance(ev, dict) else {}


def baseline_name(rollout: Rollout, section: dict[str, Any]) -> str | None:
    """Explicitly configured baseline variant: settings first, then the manifest."""
    for src in (section, _manifest_eval(rollout)):
        v = src.get("baseline_variant")
        if isinstance(v, str) and v:
            return v
    return None


def default_variant(path: Path, rollout: Rollout, section: dict[str, Any]) -> str | None:
    """Variant name for rows with no variant column: the manifest's baseline file is the baseline."""
    base_file = resolve(rollout.root, _manifest_eval(rollout).get("baseline"))
    if base_file is not None and base_file.resolve() == path.resolve():
        return baseline_name(rollout, section) or "base"
    return None


def _finding_for(problem: Problem, path: Path) -> Finding:
    r = _PROBLEM_RULE.get(problem.kind, R.MALFORMED)
    sev = None
    if problem.kind == "bad_lines":
        sev = Severity.WARNING
    return r.finding(
        path, f"{path.name}: {problem.message}", locator=problem.locator, evidence=problem.evidence, severity=sev
    )


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


def _train_slices(rollout: Rollout) -> tuple[set[str] | None, str]:
    data = rollout.manifest.get("data", {}) if rollout.manifest else {}
    if not isinstance(data, dict):
        return None, ""
    ts = data.get("train_slices")
    if isinstance(ts, list) and ts:
        return {str(s) for s in ts}, "manifest [data] train_slices"
    train = resolve(rollout.root, data.get("train"))
    if train is not None and train.is_file() and train.suffix == ".jsonl":
        found: set[str] = set()
        with train.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"slice"' not in line:
                    continue
                try:
                    obj = loads_json(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("slice") is not None:
                    found.add(str(obj["slice"]))
        if found:
            return found, f"slice labels of {train.name}"
    return None, ""


def options(ctx: ProbeContext, rollout: Rollout | None = None) -> Options:
    from probes.eval_slices.compare import Options

    section = ctx.section("eval")
    safety = section.get("safety_slices")
    perf = _manifest_eval(rollout).get("perf", {}) if rollout is not None else {}
    return Options(
        alpha=float(ctx.param(R.SLICE_REGRESSION, "alpha")),
        min_effect=float(ctx.param(R.SLICE_REGRESSION, "min_effect")),
        resamples=int(ctx.param(R.SLICE_REGRESSION, "resamples")),
        correction=str(ctx.param(R.SLICE_REGRESSION, "correction")),
        power=float(ctx.param(R.SLICE_REGRESSION, "power")),
        min_n=int(ctx.param(R.INSUFFICIENT, "min_n")),
        max_mde=float(ctx.param(R.INSUFFICIENT, "max_mde")),
        min_refusal_drop=float(ctx.param(R.SAFETY_REGRESSION, "min_drop")),
        min_over_refusal=float(ctx.param(R.OVER_REFUSAL, "min_rise")),
        seed=int(section.get("seed", 0)),
        safety_slices=tuple(str(s) for s in safety) if isinstance(safety, list) else None,
        perf={str(k): dict(v) for k, v in perf.items() if isinstance(v, dict)} if isinstance(perf, dict) else {},
    )


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} pts"


def _pc(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _trainer_eval_only(t: EvalTable) -> bool:
    """A Trainer metrics file holding only the in-training eval split (eval_loss, …), no predict run."""
    return t.fmt == "llama_factory_results" and set((t.aggregate or {}).get("splits", {})) <= {"eval"}


def _val(e: dict[str, Any], x: float | None) -> str:
    """An aggregate value in the metric's own units: 0..1 as %, BLEU/ROUGE as points, loss as is."""
    if x is None:
        return "n/a"
    scale = e.get("scale", 1.0)
    if scale is None:
        return f"{x:.4g}"
    return f"{x * 100:.2f}" if scale == 100 else f"{x * 100:.1f}%"


def _dval(e: dict[str, Any], x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.4g}" if e.get("scale", 1.0) is None else f"{x * 100:+.2f} pts"


class EvalSlicesProbe(Probe):
    name = "eval_slices"
    kinds = frozenset({"eval_table"})
    rules = R.RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        dv = default_variant(artifact.path, ctx.rollout, ctx.section("eval"))
        table = load(artifact.path, dv, ctx.session)
        artifact.facts.update(_facts(table))
        out = [_finding_for(p, artifact.path) for p in table.problems]
        tol = float(ctx.param(R.SUMMARY_MISMATCH, "tolerance"))
        for c in table.claims:
            div = c.get("scale") or 1.0
            gap = abs(c["stated"] - c["computed"]) / div
            if gap > tol:
                out.append(
                    R.SUMMARY_MISMATCH.finding(
                        artifact.path,
                        f"{artifact.path.name}: {c['variant']} states {c['what']} = {c['stated']:.4g}, but the "
                        f"{c['how']} it holds give {c['computed']:.4g} (gap {gap * 100:.1f} pts > "
                        f"{tol * 100:.1f}); doctor compares the rows, not the stated field",
                        locator=c["locator"],
                        evidence=c,
                    )
                )
        if table.scored_by and table.usable:
            out.append(
                R.SCORED_BY_DOCTOR.finding(
                    artifact.path,
                    f"{artifact.path.name}: {table.rows} rows have no score column; doctor scored them with "
                    f"{table.scored_by} (metrics: {', '.join([table.metric, *table.metrics])})",
                    locator="score",
                    evidence={"scored_by": table.scored_by, "metrics": [table.metric, *table.metrics]},
                )
            )
        return out

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
                continue
            if t.usable or t.is_aggregate:
                tables.append(t)
                art_of[id(t)] = a
                if dv is not None:
                    fixed.add(id(t))
        if not tables:
            return []
        from probes.eval_slices.pairing import plan as plan_pairs

        plan = plan_pairs(tables, rollout.root, fixed)
        art_of = {id(new): art_of[id(old)] for old, new in zip(tables, plan.tables)}
        tables = plan.tables
        out: list[Finding] = []
        names = sorted({v for t in tables for v in t.variants})
        explicit = baseline_name(rollout, section)
        from probes.eval_slices.compare import pick_baseline

        # an exact `base`/`baseline`/`prompt_only` name first (as before), then the one base-like name
        base = pick_baseline(names, explicit) if explicit else (pick_baseline(names, None) or plan.baseline)
        where = tables[0].path
        published = ctx.session.derived.setdefault(DERIVED_KEY, {})
        for a in arts:
            published.pop(str(a.path), None)
        if base is None:
            if len(names) == 1 and not explicit and all(_trainer_eval_only(t) for t in tables):
                return out  # a training run's own eval_loss is not an eval to compare
            out.append(self._no_baseline(where, names, explicit, plan))
            return out
        opts = options(ctx, rollout)
        table = self._paired_rows(tables, base, opts, art_of, plan.how)
        table += self._aggregate_rows(tables, base, opts, art_of, plan.how)
        for a in arts:
            a.facts.pop("comparison", None)
        base_path = next(t.path for t in tables if base in t.variants)
        for row in table:
            art = row.pop("_artifact")
            art.facts.setdefault("comparison", []).append(row)
            published.setdefault(str(art.path), []).append(row)
            if row.get("source") == "aggregate":
                out.extend(self._aggregate_findings(row, art.path, opts))
            else:
                out.extend(self._row_findings(row, art.path, base_path, opts, ctx, section))
        out.extend(self._suspicious(tables, table, base, ctx, art_of))
        per_slices = sorted({s for t in tables if t.usable for s in t.slices})
        primary = [r for r in table if r.get("source") != "aggregate" and r.get("primary", True)]
        out.extend(self._coverage(rollout, primary, where, per_slices))
        return out

    def _no_baseline(self, where: Path, names: list[str], explicit: str | None, plan: Any) -> Finding:
        ask = (
            'name it in rollout.toml: [eval] baseline = "<path of the baseline results>" '
            '(or [eval] baseline_variant = "NAME")'
        )
        if explicit:
            return R.BASELINE_MISSING.finding(
                where,
                f"baseline variant {explicit!r} (from the settings or manifest) is not in the eval tables; "
                f"variants found: {', '.join(names)}",
                locator="baseline",
                severity=Severity.ERROR,
                evidence={"variants": names, "expected": explicit},
            )
        if plan.ambiguous and plan.evidence.get("baseline_like"):
            return R.PAIRING_AMBIGUOUS.finding(
                where,
                f"cannot tell baseline from candidate: {plan.ambiguous} (named by {plan.how}); nothing was "
                f"compared — {ask}",
                locator="baseline",
                evidence=plan.evidence,
            )
        return R.BASELINE_MISSING.finding(
            where,
            f"no baseline variant among {', '.join(names)} (expected `base`/`baseline`, a `…-base` folder, "
            f"or [eval] baseline_variant); nothing was compared — {ask}",
            locator="baseline",
            evidence={"variants": names, "expected": "base", "by": plan.how},
        )

    def _paired_rows(
        self, tables: list[EvalTable], base: str, opts: Options, art_of: dict[int, Artifact], how: str
    ) -> list[dict[str, Any]]:
        """Per-example comparisons: the files' own scores, then each further metric they all carry."""
        from probes.eval_slices.compare import compare, pair

        per_ex = [t for t in tables if t.usable]
        if not per_ex:
            return []
        runs: list[tuple[str | None, str | None, list[EvalTable]]] = [(None, None, per_ex)]
        for m in sorted({m for t in per_ex for m in t.metrics}):
            runs.append((m, None, [self._copy(t, t.with_metric(m), art_of) for t in per_ex if m in t.metrics]))
        for g in sorted({g for t in per_ex for g in t.groupings}):
            runs.append((None, g, [self._copy(t, t.with_grouping(g), art_of) for t in per_ex if g in t.groupings]))
        rows = []
        for metric, grouping, ts in runs:
            pairing = pair(ts)
            if base not in pairing.variants or len(pairing.variants) < 2:
                continue
            for row in compare(pairing, base, opts):
                srcs = pairing.variants[row["variant"]].sources
                row["metric"] = metric or ", ".join(sorted({t.metric for t in srcs}))
                row["scale"] = next(
                    (t.metric_scales[row["metric"]] for t in srcs if row["metric"] in t.metric_scales), 1.0
                )
                row["source"] = "per_example"
                row["primary"] = metric is None and grouping is None
                row["grouping"] = grouping
                row["pairing"] = how
                row["scored_by"] = "; ".join(sorted({t.scored_by for t in srcs if t.scored_by}))
                row["_artifact"] = art_of[id(srcs[0])]
                rows.append(row)
        return rows

    @staticmethod
    def _copy(t: EvalTable, c: EvalTable, art_of: dict[int, Artifact]) -> EvalTable:
        art_of[id(c)] = art_of[id(t)]
        return c

    def _aggregate_rows(
        self, tables: list[EvalTable], base: str, opts: Options, art_of: dict[int, Artifact], how: str
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

    # ----------------------------------------------------------------------------------------------

    def _row_findings(
        self,
        row: dict[str, Any],
        path: Path,
        base_path: Path,
        opts: Options,
        ctx: ProbeContext,
        section: dict[str, Any],
    ) -> Iterable[Finding]:
        v, b = row["variant"], row["baseline"]
        chart = [
            {k: s[k] for k in ("slice", "n", "base", "cand", "delta", "ci_low", "ci_high", "p", "p_adj")}
            for s in row["slices"]
        ]
        common = {"variant": v, "baseline": b, "slices": chart, "metric": row.get("metric")}
        metric = f", metric {row['metric']}" if row.get("metric") and row["metric"] != "score" else ""
        scored = f"; rows scored by doctor: {row['scored_by']}" if row.get("scored_by") else ""
        primary = row.get("primary", True)  # further metrics of the same rows: slice findings only
        scale = row.get("scale") or 1.0

        def unit(x: float | None) -> str:  # the judge's own units (4.20/5) or a percentage
            return _pc(x) if scale == 1.0 or x is None else f"{x * scale:.2f}/{scale:g}"

        def dunit(x: float | None) -> str:
            return _pts(x) if scale == 1.0 or x is None else f"{x * scale:+.2f}"

        # pairing
        if row["paired"] == 0:
            if not primary:
                return
            yield R.UNPAIRED_IDS.finding(
                path,
                f"{v} vs {b}: no example id has a usable score on both sides "
                f"({row['only_baseline']} baseline-only, {row['only_candidate']} candidate-only ids); nothing compared",
                locator=f"{v}",
                severity=Severity.ERROR,
                evidence={
                    "paired": 0,
                    "only_baseline": row["only_baseline"],
                    "only_candidate": row["only_candidate"],
                    "examples": row["unpaired_examples"],
                },
            )
            return
        if primary and (row["only_baseline"] or row["only_candidate"] or row["unusable_pairs"]):
            ex = row["unpaired_examples"]
            yield R.UNPAIRED_IDS.finding(
                path,
                f"{v} vs {b}: {row['paired']} examples paired; {row['only_baseline']} ids only in the baseline"
                f"{' (e.g. ' + ', '.join(ex['baseline'][:3]) + ')' if ex['baseline'] else ''}, "
                f"{row['only_candidate']} only in the candidate"
                f"{' (e.g. ' + ', '.join(ex['candidate'][:3]) + ')' if ex['candidate'] else ''}"
                + (f", {row['unusable_pairs']} pairs without a usable score" if row["unusable_pairs"] else ""),
                locator=f"{v}",
                evidence={
                    "paired": row["paired"],
                    "only_baseline": row["only_baseline"],
                    "only_candidate": row["only_candidate"],
                    "unusable_pairs": row["unusable_pairs"],
                    "examples": ex,
                },
            )
        for key, side in (("baseline_only_slices", "baseline"), ("candidate_only_slices", "candidate")):
            if primary and row[key]:
                yield R.ONE_SIDED_SLICE.finding(
                    path,
                    f"{v} vs {b}: slice(s) {', '.join(row[key])} appear only in the {side}; not compared",
                    locator=f"{v}:{side}-only",
                    evidence={"slices_one_side": row[key], "side": side, **common},
                )
        regressed = []
        for s in row["slices"]:
            loc = f"{v}:{s['slice']}" + ("" if primary else f":{row['metric']}")
            ci = f"95% CI {dunit(s['ci_low'])} … {dunit(s['ci_high'])}"
            if s["status"] == "regression" and not s["safety"]:
                regressed.append(s)
                yield R.SLICE_REGRESSION.finding(
                    path,
                    f"{v} vs {b} on slice {s['slice']}{metric}: {unit(s['base'])} → {unit(s['cand'])} "
                    f"({dunit(s['delta'])}, {ci}, n={s['n']} paired, {s.get('test', 'paired test')} p={s['p']:.2g}, "
                    f"{row['correction']}-adjusted p={s['p_adj']:.2g}){scored}",
                    locator=loc,
                    evidence={**common, "slice": s["slice"], "row": s},
                )
            elif s["status"] == "insufficient_samples":
                why = (
                    f"only {s['n']} paired examples (< {opts.min_n})"
                    if s["n"] < opts.min_n
                    else f"minimum detectable effect {_pts(s['mde']).lstrip('+')} > {opts.max_mde * 100:.0f} pts"
                )
                yield R.INSUFFICIENT.finding(
                    path,
                    f"{v} vs {b} on slice {s['slice']}: {why}; observed {_pts(s['delta'])} ({ci}) "
                    "cannot be judged either way",
                    locator=loc,
                    evidence={**common, "slice": s["slice"], "row": s},
                )
        if not primary:
            return
        o = row["overall"]
        if regressed and o and o["delta"] is not None and o["delta"] > 0:
            yield R.MASKED_REGRESSION.finding(
                path,
                f"{v} lifts the overall score {_pc(o['base'])} → {_pc(o['cand'])} ({_pts(o['delta'])}) while "
                f"{len(regressed)} slice(s) regressed: "
                + ", ".join(f"{s['slice']} {_pts(s['delta'])}" for s in regressed),
                locator=f"{v}",
                evidence={**common, "overall": o, "regressed": [s["slice"] for s in regressed]},
            )
        sf = row["safety"]
        if sf and sf["delta"] is not None and sf["delta"] <= -opts.min_refusal_drop and sf["p"] < opts.alpha:
            yield R.SAFETY_REGRESSION.finding(
                path,
                f"{v} vs {b}: safety refusal rate {_pc(sf['base'])} → {_pc(sf['cand'])} ({_pts(sf['delta'])}, "
                f"95% CI {_pts(sf['ci_low'])} … {_pts(sf['ci_high'])}, n={sf['n']}, McNemar p={sf['p']:.2g}); "
                f"{_pc(sf['regression_rate'])} of safety prompts refused by the baseline are now answered",
                locator=f"{v}:safety",
                evidence={**common, "safety": sf},
            )
        orf = row["over_refusal"]
        if orf and orf["delta"] is not None and orf["delta"] >= opts.min_over_refusal and orf["p"] < opts.alpha:
            yield R.OVER_REFUSAL.finding(
                path,
                f"{v} vs {b}: refusals on benign slices {_pc(orf['base'])} → {_pc(orf['cand'])} "
                f"({_pts(orf['delta'])}, n={orf['n']}, McNemar p={orf['p']:.2g})",
                locator=f"{v}:over-refusal",
                evidence={**common, "over_refusal": orf},
            )
        yield from self._gate(row, path, opts, section, common)

    def _aggregate_findings(self, row: dict[str, Any], path: Path, opts: Options) -> Iterable[Finding]:
        v, b = row["variant"], row["baseline"]
        chart = [
            {k: e.get(k) for k in ("slice", "n", "base", "cand", "delta", "ci_low", "ci_high", "p", "p_adj")}
            for e in row["slices"]
            if e["status"] != "not_comparable"
        ]
        common = {"variant": v, "baseline": b, "slices": chart, "test": row["test"]}
        weak = "weaker evidence than a paired test: both ran the same examples, per-example rows would allow one"
        for e in row["slices"]:
            loc = f"{v}:{e['task']}:{e['metric']}"
            n = f"n={e['n']}" + (f" ({e['n_source']})" if e.get("n_source") else "") if e.get("n") else "n unknown"
            if e["status"] == "regression":
                yield R.SLICE_REGRESSION.finding(
                    path,
                    f"{v} vs {b} on {e['task']}, metric {e['metric']}: {_val(e, e['base'])} → {_val(e, e['cand'])} "
                    f"({_dval(e, e['delta'])}, 95% CI {_dval(e, e['ci_low'])} … {_dval(e, e['ci_high'])}, "
                    f"{row['test']}: z={e['z']:.2f}, p={e['p']:.2g}, {row['correction']}-adjusted "
                    f"p={e['p_adj']:.2g}, {n}; {weak}; minimum detectable effect {_dval(e, e['mde']).lstrip('+')})",
                    locator=loc,
                    evidence={**common, "slice": e["slice"], "row": e},
                )
            elif e["status"] == "insufficient_samples":
                yield R.INSUFFICIENT.finding(
                    path,
                    f"{v} vs {b} on {e['task']}, metric {e['metric']}: observed {_dval(e, e['delta'])} "
                    f"({_val(e, e['base'])} → {_val(e, e['cand'])}, p={e['p']:.2g}), but at this stderr ({n}) "
                    f"the minimum detectable effect is {_dval(e, e['mde']).lstrip('+')}"
                    + (
                        f" (> {opts.max_mde * 100:.0f} pts)"
                        if e["mde"] > opts.max_mde
                        else ": n is too small for a difference of this size"
                    )
                    + f"; it cannot be judged either way ({row['test']})",
                    locator=loc,
                    evidence={**common, "slice": e["slice"], "row": e},
                )
        blind = [e for e in row["slices"] if e["status"] == "not_comparable"]
        if blind:
            shown = "; ".join(
                f"{e['task']} · {e['metric']} {_val(e, e['base'])} → {_val(e, e['cand'])} ({_dval(e, e['delta'])})"
                for e in blind[:8]
            )
            yield R.NOT_COMPARABLE.finding(
                path,
                f"{v} vs {b}: {len(blind)} metric(s) exist only as aggregates without a stderr or per-example "
                f"rows, so no test can judge them: {shown}",
                locator=f"{v}:not-comparable",
                evidence={"variant": v, "baseline": b, "metrics": blind},
            )
        for key, side in (("baseline_only_slices", "baseline"), ("candidate_only_slices", "candidate")):
            if row[key]:
                yield R.ONE_SIDED_SLICE.finding(
                    path,
                    f"{v} vs {b}: metric(s) {', '.join(row[key][:10])} appear only in the {side}; not compared",
                    locator=f"{v}:{side}-only",
                    evidence={"slices_one_side": row[key], "side": side, **common},
                )

    def _suspicious(
        self, tables: list[EvalTable], rows: list[dict[str, Any]], base: str, ctx: ProbeContext, art_of: dict
    ) -> Iterable[Finding]:
        max_n = int(ctx.param(R.PERFECT_SCORES, "max_n"))
        for row in rows:
            if not row.get("primary", True):
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
            shown = ", ".join(f"{e['slice']} {_pc(e['base'])}" for e in es[:6])
            yield R.PERFECT_SCORES.finding(
                art.path if art else tables[0].path,
                f"{row['variant']} scores 100% on all {len(es)} slice(s) of a {sum(ns)}-example set "
                f"(baseline {shown}): possible test "
                "leakage (eval examples in the training data, or targets scored as predictions)",
                locator=f"{row['variant']}:perfect",
                evidence={
                    "variant": row["variant"],
                    "baseline": base,
                    "n": sum(ns),
                    "slices": [e["slice"] for e in es],
                },
            )

    def _gate(
        self, row: dict[str, Any], path: Path, opts: Options, section: dict[str, Any], common: dict[str, Any]
    ) -> Iterable[Finding]:
        gate = section.get("gate", {})
        if not isinstance(gate, dict) or not gate:
            return
        v, b = row["variant"], row["baseline"]
        lim = gate.get("max_slice_regression")
        if isinstance(lim, (int, float)):
            lim = lim / 100 if lim > 1 else float(lim)
            for s in row["slices"]:
                if s["n"] >= opts.min_n and s["delta"] is not None and s["delta"] < -lim:
                    yield R.GATE_SLICE.finding(
                        path,
                        f"{v} vs {b} on slice {s['slice']}: {_pts(s['delta'])} (95% CI {_pts(s['ci_low'])} … "
                        f"{_pts(s['ci_high'])}, n={s['n']}) exceeds the gate's max_slice_regression of "
                        f"{lim * 100:.1f} pts",
                        locator=f"{v}:{s['slice']}",
                        evidence={**common, "slice": s["slice"], "limit": lim, "row": s},
                    )
        floor = gate.get("min_safety_refusal_rate")
        if isinstance(floor, (int, float)):
            floor = floor / 100 if floor > 1 else float(floor)
            sf = row["safety"]
            if sf is None:
                yield R.GATE_SAFETY.finding(
                    path,
                    f"{v}: the gate sets min_safety_refusal_rate but no safety slice was evaluated",
                    locator=f"{v}:safety",
                    severity=Severity.WARNING,
                    evidence={"limit": floor},
                )
            elif sf["cand"] is not None and sf["cand"] < floor:
                yield R.GATE_SAFETY.finding(
                    path,
                    f"{v}: safety refusal rate {_pc(sf['cand'])} (n={sf['n']}) is below the gate's "
                    f"min_safety_refusal_rate of {_pc(floor)} (baseline {_pc(sf['base'])})",
                    locator=f"{v}:safety",
                    evidence={**common, "limit": floor, "safety": sf},
                )
        lat = gate.get("max_latency_increase")
        if isinstance(lat, (int, float)):
            m = row["latency_ms"]
            if not m or m.get("increase") is None:
                yield R.GATE_LATENCY.finding(
                    path,
                    f"{v}: the gate sets max_latency_increase but no latency_ms was recorded for both variants",
                    locator=f"{v}:latency",
                    severity=Severity.INFO,
                    evidence={"limit": lat},
                )
            elif m["increase"] > lat:
                yield R.GATE_LATENCY.finding(
                    path,
                    f"{v}: mean latency {m['base']} ms → {m['cand']} ms ({m['increase'] * 100:+.1f}%) exceeds "
                    f"the gate's max_latency_increase of {lat * 100:+.1f}%",
                    locator=f"{v}:latency",
                    evidence={"limit": lat, "latency_ms": m, "variant": v},
                )

    def _coverage(
        self, rollout: Rollout, table: list[dict[str, Any]], where: Path, slices: list[str]
    ) -> Iterable[Finding]:
        trained, src = _train_slices(rollout)
        if trained is None:
            return
        evald = sorted({s["slice"] for row in table for s in row["slices"]} or set(slices))
        absent = [s for s in evald if s not in trained]
        if not absent:
            return
        deltas = {}
        for row in table:
            for s in row["slices"]:
                if s["slice"] in absent:
                    deltas.setdefault(s["slice"], {})[row["variant"]] = s["delta"]
        detail = "; ".join(f"{s}: " + ", ".join(f"{v} {_pts(d)}" for v, d in deltas.get(s, {}).items()) for s in absent)
        yield R.NARROW_COVERAGE.finding(
            where,
            f"{len(absent)} of {len(evald)} eval slices are absent from the training data ({src}: "
            f"{', '.join(sorted(trained))}): {detail}",
            locator="coverage",
            evidence={
                "absent": absent,
                "trained": sorted(trained),
                "evaluated": evald,
                "source": src,
                "deltas": deltas,
            },
        )


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
    from probes.eval_slices.compare import pick_baseline
    from probes.eval_slices.pairing import plan as plan_pairs

    tables = [t for t in tables if t.usable or t.is_aggregate]
    if not tables:
        return []
    ctx = ProbeContext(settings=settings, rollout=rollout)
    plan = plan_pairs(tables, rollout.root, fixed or set())
    tables = plan.tables
    names = sorted({v for t in tables for v in t.variants})
    explicit = baseline_name(rollout, ctx.section("eval"))
    base = pick_baseline(names, explicit) if explicit else (pick_baseline(names, None) or plan.baseline)
    if base is None:
        return []
    opts = options(ctx, rollout)
    probe = EvalSlicesProbe()
    art_of: dict[int, Any] = {id(t): None for t in tables}
    rows = probe._paired_rows(tables, base, opts, art_of, plan.how) + probe._aggregate_rows(
        tables, base, opts, art_of, plan.how
    )
    for r in rows:
        r.pop("_artifact", None)
    return rows


def to_markdown(table: list[dict[str, Any]]) -> str:
    """The comparison table as markdown (see `compare.to_markdown`)."""
    from probes.eval_slices.compare import to_markdown as md

    return md(table)


__all__ = ["PROBES", "comparison_table", "to_markdown"]
