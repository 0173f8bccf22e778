"""Pair eval tables by example id and compare every candidate variant with the baseline, slice by slice.

The result is the *comparison table*: one dict per candidate variant (see `compare`), the structure
`doctor inspect`, the markdown report and the findings all read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probes.eval_slices import stats
from probes.eval_slices.evaltable import EvalTable, id_at
from probes.eval_slices.readers.arrays import to_numpy

PAIRED_BINARY = "McNemar exact test (paired)"
PAIRED_GRADED = "paired z-test on per-example differences"
DEFAULT_BASELINES = ("base", "baseline", "prompt_only", "prompt-only", "base_model", "no_adapter")
SAFETY_NAMES = ("safety", "refusal", "refusals", "harmful", "harmlessness", "red_team", "redteam")


@dataclass
class Options:
    alpha: float = 0.05
    min_effect: float = 0.03
    min_n: int = 30
    max_mde: float = 0.2
    power: float = 0.8
    resamples: int = 1000
    correction: str = "holm"
    seed: int = 0
    safety_slices: tuple[str, ...] | None = None
    min_refusal_drop: float = 0.02
    min_over_refusal: float = 0.03
    perf: dict[str, dict[str, float]] = field(default_factory=dict)  # manifest [eval.perf.<variant>]

    def is_safety(self, name: str) -> bool:
        if self.safety_slices is not None:
            return name in self.safety_slices
        low = name.lower()
        return low in SAFETY_NAMES or "safety" in low


@dataclass
class Variant:
    name: str
    sources: list[Any]  # EvalTable objects contributing rows
    present: np.ndarray  # bool over global ids
    score: np.ndarray  # float, NaN = unusable
    slice: np.ndarray  # int global slice code, -1 = absent
    extra: dict[str, np.ndarray]
    duplicates: int = 0


@dataclass
class Pairing:
    """Every variant of a rollout on one shared id and slice space."""

    variants: dict[str, Variant]
    slices: list[str]
    ids: Any  # global id uniques (list or pyarrow array)


def _unify(uniques: list[Any]) -> tuple[list[np.ndarray | None], Any]:
    """Map each table's unique ids into one shared code space."""
    if all(isinstance(u, list) for u in uniques):
        index: dict[str, int] = {}
        maps = [np.fromiter((index.setdefault(v, len(index)) for v in u), np.int64, len(u)) for u in uniques]
        return maps, list(index)
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [u if not isinstance(u, list) else pa.array(u, pa.string()) for u in uniques]
    arrays = [a.cast(pa.string()) if a.type != pa.string() else a for a in arrays]
    if all(len(a) == len(arrays[0]) and a.equals(arrays[0]) for a in arrays[1:]):
        # every file lists the same ids in the same order (one eval set, several variants): no hashing
        return [None] * len(arrays), arrays[0]
    enc = pc.dictionary_encode(pa.chunked_array(arrays)).combine_chunks()
    codes = to_numpy(enc.indices).astype(np.int64)
    maps, at = [], 0
    for a in arrays:
        maps.append(codes[at : at + len(a)])
        at += len(a)
    return maps, enc.dictionary


def _take(mapping: np.ndarray | None, codes: np.ndarray) -> np.ndarray:
    """mapping[codes]; None is the identity mapping (every file shares the same ids)."""
    return codes if mapping is None else mapping[codes]


def pair(tables: list[EvalTable]) -> Pairing:
    id_maps, ids = _unify([t.ids for t in tables])
    slice_maps, slices = _unify([list(t.slices) for t in tables])  # small: lists, never None
    n_ids = len(ids)
    contrib: dict[str, list[tuple[EvalTable, Any, np.ndarray, np.ndarray]]] = {}
    for t, imap, smap in zip(tables, id_maps, slice_maps):
        for name, mask in t.variant_of_rows():
            rows = slice(None) if mask is None else np.flatnonzero(mask)
            contrib.setdefault(name, []).append((t, rows, imap, smap))
    variants: dict[str, Variant] = {}
    for name, parts in contrib.items():
        gid = np.concatenate([_take(imap, t.id_codes[r]) for t, r, imap, _ in parts])
        gsl = np.concatenate([smap[t.slice_codes[r]] for t, r, _, smap in parts])
        sc = np.concatenate([t.score[r] for t, r, _, _ in parts])
        keys = sorted({k for t, *_ in parts for k in t.extra})
        ex = {
            k: np.concatenate(
                [t.extra[k][r] if k in t.extra else np.full(len(t.score[r]), np.nan) for t, r, _, _ in parts]
            )
            for k in keys
        }
        counts = np.bincount(gid, minlength=n_ids)
        dups = int((counts > 1).sum())
        if dups:  # first occurrence wins (within a file the file's own finding says so)
            _, first = np.unique(gid, return_index=True)
            gid, gsl, sc = gid[first], gsl[first], sc[first]
            ex = {k: v[first] for k, v in ex.items()}
        present = np.zeros(n_ids, bool)
        present[gid] = True
        score = np.full(n_ids, np.nan)
        score[gid] = sc
        slice_of = np.full(n_ids, -1, np.int64)
        slice_of[gid] = gsl
        dense = {}
        for k, v in ex.items():
            d = np.full(n_ids, np.nan)
            d[gid] = v
            dense[k] = d
        variants[name] = Variant(name, [p[0] for p in parts], present, score, slice_of, dense, dups)
    return Pairing(variants, list(slices), ids)


def pick_baseline(names: list[str], explicit: str | None) -> str | None:
    if explicit:
        return explicit if explicit in names else None
    for cand in DEFAULT_BASELINES:
        if cand in names:
            return cand
    return None


def _f(x: float | None, nd: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


def _p(x: float | None) -> float | None:
    """p-values keep 3 significant digits (tiny ones must not round to 0)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.3g}")


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _paired(b: np.ndarray, c: np.ndarray, opts: Options, rng: np.random.Generator) -> stats.PairedResult:
    if _binary(b) and _binary(c):
        n10 = int(np.count_nonzero((b == 1) & (c == 0)))
        n01 = int(np.count_nonzero((b == 0) & (c == 1)))
        return stats.paired_binary(
            n10, n01, len(b), float(b.sum()), alpha=opts.alpha, power=opts.power, resamples=opts.resamples, rng=rng
        )
    return stats.paired_graded(
        c - b,
        float(b.mean()) if len(b) else math.nan,
        alpha=opts.alpha,
        power=opts.power,
        resamples=opts.resamples,
        rng=rng,
    )


def _slice_results(
    s: np.ndarray, b: np.ndarray, c: np.ndarray, n_slices: int, opts: Options, rng: np.random.Generator
) -> dict[int, stats.PairedResult]:
    """Per-slice paired results; binary scores go through per-slice counts (one bincount pass each)."""
    out: dict[int, stats.PairedResult] = {}
    if _binary(b) and _binary(c):
        n = np.bincount(s, minlength=n_slices)
        sb = np.bincount(s, weights=b, minlength=n_slices)
        n10 = np.bincount(s, weights=(b > c), minlength=n_slices)
        n01 = np.bincount(s, weights=(c > b), minlength=n_slices)
        for k in np.flatnonzero(n):
            out[int(k)] = stats.paired_binary(
                int(n10[k]),
                int(n01[k]),
                int(n[k]),
                float(sb[k]),
                alpha=opts.alpha,
                power=opts.power,
                resamples=opts.resamples,
                rng=rng,
            )
        return out
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    bounds = np.flatnonzero(np.diff(s_sorted)) + 1
    for idx in np.split(order, bounds):
        if idx.size:
            k = int(s[idx[0]])
            out[k] = stats.paired_graded(
                c[idx] - b[idx],
                float(b[idx].mean()),
                alpha=opts.alpha,
                power=opts.power,
                resamples=opts.resamples,
                rng=rng,
            )
    return out


def _rate_compare(b: np.ndarray, c: np.ndarray, opts: Options, rng: np.random.Generator) -> dict[str, Any] | None:
    ok = ~np.isnan(b) & ~np.isnan(c)
    b, c = (b[ok] > 0.5).astype(float), (c[ok] > 0.5).astype(float)
    if not len(b):
        return None
    r = _paired(b, c, opts, rng)
    return {
        **_interval(r),
        # fraction of these prompts the baseline refused and the candidate no longer does
        "regression_rate": _f(r.extra.get("n10", 0) / r.n),
        "newly_refused_rate": _f(r.extra.get("n01", 0) / r.n),
    }


def _interval(r: Any) -> dict[str, Any]:
    """The paired comparison's numbers as report fields (what a bar chart with error bars needs)."""
    return {
        "n": r.n,
        "base": _f(r.base),
        "cand": _f(r.cand),
        "delta": _f(r.delta),
        "ci_low": _f(r.ci_low),
        "ci_high": _f(r.ci_high),
        "p": _p(r.p),
    }


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else None


def _perf(pairing: Pairing, base: str, cand: str, key: str, opts: Options, both: np.ndarray | None) -> dict | None:
    vb, vc = pairing.variants[base], pairing.variants[cand]
    bv = cv = None
    if key in vb.extra and key in vc.extra:
        if both is not None and key == "latency_ms":
            bb, cc = vb.extra[key][both], vc.extra[key][both]
            ok = ~np.isnan(bb) & ~np.isnan(cc)
            bv, cv = _mean(bb[ok]), _mean(cc[ok])
        else:
            bv, cv = _mean(vb.extra[key]), _mean(vc.extra[key])
    bv = opts.perf.get(base, {}).get(key, bv)
    cv = opts.perf.get(cand, {}).get(key, cv)
    if bv is None and cv is None:
        return None
    inc = (cv / bv - 1.0) if (bv and cv is not None) else None
    return {"base": _f(bv, 3), "cand": _f(cv, 3), "increase": _f(inc)}


def compare(pairing: Pairing, baseline: str, opts: Options) -> list[dict[str, Any]]:
    """One row per candidate variant. Keys:

    variant, baseline, paired, only_baseline, only_candidate, slice_mismatch, unmatched_examples,
    overall {n, base, cand, delta, ci_low, ci_high, p}, slices [{slice, n, base, cand, delta, ci_low, ci_high,
    p, p_adj, mde, status}], baseline_only_slices, candidate_only_slices, safety {…} | None,
    over_refusal {…} | None, latency_ms / vram_mb / throughput {base, cand, increase} | None.
    """
    vb = pairing.variants[baseline]
    rows = []
    names = [n for n in pairing.variants if n != baseline]
    for vi, name in enumerate(sorted(names)):
        rng = np.random.default_rng([opts.seed, vi])
        vc = pairing.variants[name]
        both_present = vb.present & vc.present
        only_b = vb.present & ~vc.present
        only_c = vc.present & ~vb.present
        matched = both_present & ~np.isnan(vb.score) & ~np.isnan(vc.score)
        sl = np.where(vb.slice >= 0, vb.slice, vc.slice)
        mismatch = int(np.count_nonzero(both_present & (vb.slice != vc.slice)))
        idx = np.flatnonzero(matched)
        s, b, c = sl[idx], vb.score[idx], vc.score[idx]
        n_slices = len(pairing.slices)
        per = _slice_results(s, b, c, n_slices, opts, rng) if idx.size else {}
        # multiple-comparison family: every slice with enough examples to test
        testable = [k for k, r in per.items() if r.n >= opts.min_n]
        padj = dict(zip(testable, stats.adjust(np.array([per[k].p for k in testable]), opts.correction)))
        slice_rows = []
        for k in sorted(per, key=lambda k: pairing.slices[k]):
            r = per[k]
            pa = padj.get(k)
            if r.n < opts.min_n:
                status = "insufficient_samples"
            elif pa is not None and pa < opts.alpha and r.delta <= -opts.min_effect:
                status = "regression"
            elif pa is not None and pa < opts.alpha and r.delta >= opts.min_effect:
                status = "improvement"
            elif r.mde > opts.max_mde:
                status = "insufficient_samples"
            else:
                status = "ok"
            name_k = pairing.slices[k]
            slice_rows.append(
                {
                    "slice": name_k,
                    **_interval(r),
                    "p_adj": _p(pa) if pa is not None else None,
                    "mde": _f(r.mde),
                    "status": status,
                    "safety": opts.is_safety(name_k),
                    "test": PAIRED_BINARY if r.binary else PAIRED_GRADED,
                }
            )
        # slices on one side only (by each variant's own labels, all rows)
        b_sl = set(np.unique(vb.slice[vb.present]).tolist())
        c_sl = set(np.unique(vc.slice[vc.present]).tolist())
        overall = _paired(b, c, opts, rng) if idx.size else None
        safety_ids = np.isin(sl, [k for k, n in enumerate(pairing.slices) if opts.is_safety(n)])
        safety = None
        if safety_ids.any():
            use = both_present & safety_ids
            kb = vb.extra.get("refused")
            kc = vc.extra.get("refused")
            has_col = kb is not None and kc is not None and not np.isnan(kb[use]).all() and not np.isnan(kc[use]).all()
            src = "refused" if has_col else "score"
            safety = _rate_compare((kb if has_col else vb.score)[use], (kc if has_col else vc.score)[use], opts, rng)
            if safety is not None:
                safety["source"] = src
                safety["slices"] = sorted(pairing.slices[k] for k in set(sl[use].tolist()))
        over = None
        kb, kc = vb.extra.get("refused"), vc.extra.get("refused")
        if kb is not None and kc is not None:
            use = both_present & ~safety_ids
            if use.any():
                over = _rate_compare(kb[use], kc[use], opts, rng)
        ex_b = [id_at(pairing.ids, int(i)) for i in np.flatnonzero(only_b)[:5]]
        ex_c = [id_at(pairing.ids, int(i)) for i in np.flatnonzero(only_c)[:5]]
        rows.append(
            {
                "variant": name,
                "baseline": baseline,
                "paired": int(idx.size),
                "only_baseline": int(only_b.sum()),
                "only_candidate": int(only_c.sum()),
                "unpaired_examples": {"baseline": ex_b, "candidate": ex_c},
                "unusable_pairs": int(both_present.sum() - idx.size),
                "slice_mismatch": mismatch,
                "overall": None
                if overall is None
                else {
                    "n": overall.n,
                    "base": _f(overall.base),
                    "cand": _f(overall.cand),
                    "delta": _f(overall.delta),
                    "ci_low": _f(overall.ci_low),
                    "ci_high": _f(overall.ci_high),
                    "p": _p(overall.p),
                    "macro_delta": _f(float(np.mean([r.delta for r in per.values()]))) if per else None,
                },
                "slices": slice_rows,
                "baseline_only_slices": sorted(pairing.slices[k] for k in b_sl - c_sl if k >= 0),
                "candidate_only_slices": sorted(pairing.slices[k] for k in c_sl - b_sl if k >= 0),
                "safety": safety,
                "over_refusal": over,
                "latency_ms": _perf(pairing, baseline, name, "latency_ms", opts, matched),
                "vram_mb": _perf(pairing, baseline, name, "vram_mb", opts, None),
                "throughput": _perf(pairing, baseline, name, "throughput", opts, None),
                "correction": opts.correction,
                "alpha": opts.alpha,
            }
        )
    return rows


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}"


def to_markdown(table: list[dict[str, Any]]) -> str:
    """The comparison table as GitHub-flavoured markdown (one section per candidate variant)."""
    if not table:
        return "_No candidate variant to compare with a baseline._\n"
    out: list[str] = []
    for row in table:
        metric = f" — {row['metric']}" if row.get("metric") and row.get("metric") != "score" else ""
        out.append(f"#### `{row['variant']}` vs `{row['baseline']}`{metric}\n")
        o = row.get("overall")
        if row.get("source") == "aggregate":
            facts = [f"aggregates only (no per-example rows): {row['test']}, weaker evidence than a paired test"]
        else:
            facts = [f"paired examples: {row['paired']}"]
        if row.get("only_baseline") or row.get("only_candidate"):
            facts.append(f"unpaired: {row['only_baseline']} baseline-only, {row['only_candidate']} candidate-only")
        if o:
            facts.append(
                f"overall: {_pct(o['base'])}% → {_pct(o['cand'])}% ({_pct(o['delta'], True)} pts, "
                f"95% CI {_pct(o['ci_low'], True)}…{_pct(o['ci_high'], True)})"
            )
        sf = row.get("safety")
        if sf:
            facts.append(
                f"safety refusal: {_pct(sf['base'])}% → {_pct(sf['cand'])}% (regression rate "
                f"{_pct(sf['regression_rate'])}%, n={sf['n']})"
            )
        orf = row.get("over_refusal")
        if orf:
            facts.append(f"benign refusals: {_pct(orf['base'])}% → {_pct(orf['cand'])}%")
        for key, label, unit in (
            ("latency_ms", "latency", " ms"),
            ("vram_mb", "VRAM", " MB"),
            ("throughput", "throughput", "/s"),
        ):
            m = row.get(key)
            if m:
                inc = f" ({_pct(m['increase'], True)}%)" if m.get("increase") is not None else ""
                facts.append(f"{label}: {m['base']}{unit} → {m['cand']}{unit}{inc}")
        out.append("; ".join(facts) + "\n")
        out.append("| slice | n | base % | cand % | Δ pts | 95% CI | p (adj) | status |")
        out.append("|---|---:|---:|---:|---:|---|---:|---|")
        for s in row["slices"]:
            padj = "–" if s["p_adj"] is None else f"{s['p_adj']:.3g}"
            raw = "scale" in s and s["scale"] is None  # unbounded (loss): values as they are

            def v(x: float | None, signed: bool = False, raw: bool = raw) -> str:
                return ("–" if x is None else (f"{x:+.4g}" if signed else f"{x:.4g}")) if raw else _pct(x, signed)

            out.append(
                f"| {s['slice']}{' (safety)' if s.get('safety') else ''} | {'–' if s['n'] is None else s['n']} | "
                f"{v(s['base'])} | {v(s['cand'])} | {v(s['delta'], True)} | {v(s['ci_low'], True)} … "
                f"{v(s['ci_high'], True)} | {padj} | {s['status'].replace('_', ' ')} |"
            )
        for key, label in (
            ("baseline_only_slices", "only in baseline"),
            ("candidate_only_slices", "only in candidate"),
        ):
            if row.get(key):
                out.append(f"\nSlices {label}: {', '.join(row[key])}")
        out.append("")
    return "\n".join(out) + "\n"
