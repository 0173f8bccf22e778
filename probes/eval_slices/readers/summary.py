"""Summary JSON files the common eval scripts write: a list of runs, each with a model/adapter name and
a metrics dict, optionally per-slice breakdowns and the per-item results themselves.

    [{"model": "base", "n": 400, "metrics": {"accuracy": 0.71, "f1": {"value": 0.64, "stderr": 0.02}},
      "slices": {"math": {"accuracy": 0.62, "n": 200}, …}, "items": [{"id": …, "slice": …, "correct": 1}]},
     {"adapter": "lora-r8", …}]

also under {"runs" | "results" | "models" | "evaluations": [...]}, or {"models": {"base": {...}, …}}.
Per-item results make the file a per-example table (paired test); the stated numbers are kept as
`claims` and checked against what the items and slice rows give (EVL021).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from doctor.core.safeio import read_json_file
from probes.eval_slices.aggregate import AggMetric, count
from probes.eval_slices.evaltable import EvalTable
from probes.eval_slices.readers.columns import normalize

NAME_KEYS = ("model", "adapter", "variant", "name", "run", "model_name", "system")
LIST_KEYS = ("runs", "results", "models", "evaluations", "evals")
SLICES_KEYS = ("slices", "per_slice", "by_slice", "categories", "by_category", "breakdown", "per_task", "tasks")
ITEMS_KEYS = ("items", "examples", "samples", "per_item", "per_example", "predictions", "details")
N_KEYS = ("n", "num_samples", "n_samples", "samples", "count", "num_examples", "size")
ITEM_SCORE = ("score", "correct", "acc", "accuracy", "exact_match", "em", "pass")
_POINTS = re.compile(r"bleu|rouge|chrf", re.I)
_UNBOUNDED = re.compile(r"loss|perplexity|ppl|latency|time|tokens", re.I)
# The metric an item's 0/1 score averages to, in order of preference.
_MEAN_OF_ITEMS = ("accuracy", "acc", "score", "exact_match", "em", "pass_rate", "correct")
SIGNATURE = re.compile(r'"(?:model|adapter|variant|run|model_name)"\s*:\s*"[^"]*"[\s\S]*?"metrics"\s*:\s*\{')


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _n(d: dict[str, Any]) -> int | None:
    for k in N_KEYS:
        n = count(d.get(k))
        if n is not None:
            return n
    return None


def runs_of(data: Any) -> list[dict[str, Any]] | None:
    """The run objects of a summary, or None when the JSON is not one."""
    items: Any = data
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        items = [data]  # one run per file (eval/base/metrics.json, eval/lora/metrics.json)
    elif isinstance(data, dict):
        for k in LIST_KEYS:
            v = data.get(k)
            if isinstance(v, list):
                items = v
                break
            if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                items = [{"model": name, **run} for name, run in v.items()]
                break
        else:
            return None
    if not isinstance(items, list) or not items:
        return None
    runs = [r for r in items if isinstance(r, dict) and isinstance(r.get("metrics"), dict)]
    if not runs or not all(any(isinstance(r.get(k), str) for k in NAME_KEYS) for r in runs):
        return None
    return runs


def _scale(metric: str, values: list[float]) -> float | None:
    if _UNBOUNDED.search(metric):
        return None
    top = max((abs(v) for v in values), default=0.0)
    if top <= 1.0:
        return 1.0
    if top <= 100.0 and (_POINTS.search(metric) or all(v >= 0 for v in values)):
        return 100.0
    return None


def _value(v: Any) -> tuple[float | None, float | None, int | None]:
    """(value, stderr, n) of a metric entry: a number or {"value"|"mean"|"score", "stderr"|"se", "n"}."""
    if isinstance(v, dict):
        val = next((_num(v.get(k)) for k in ("value", "mean", "score", "estimate") if _num(v.get(k)) is not None), None)
        se = next(
            (_num(v.get(k)) for k in ("stderr", "se", "std_err", "standard_error") if _num(v.get(k)) is not None), None
        )
        return val, se, _n(v)
    return _num(v), None, None


def read(path: Path) -> EvalTable:
    data = read_json_file(path)
    runs = runs_of(data)
    if runs is None:
        raise ReadError(path, "not an eval summary: expected a list of runs with a model name and a metrics dict", "/")
    single = isinstance(data, dict) and runs[0] is data
    prefix = "" if single else next((f"/{k}" for k in LIST_KEYS if isinstance(data, dict) and k in data), "")
    entries: list[tuple[str, str, str, float, float | None, int | None, str]] = []  # run, task, metric, …
    names: list[str] = []
    item_rows: list[tuple[str, dict[str, Any]]] = []
    claims: list[dict[str, Any]] = []
    for i, run in enumerate(runs):
        name = next(str(run[k]) for k in NAME_KEYS if isinstance(run.get(k), str))
        names.append(name)
        where = "" if single else f"{prefix}/{i}"
        run_n = _n(run)
        for m, v in run["metrics"].items():
            val, se, n = _value(v)
            if val is not None:
                entries.append((name, "overall", str(m), val, se, n or run_n, f"{where}/metrics/{m}"))
        sk = next((k for k in SLICES_KEYS if isinstance(run.get(k), dict)), None)
        per_slice: dict[str, dict[str, Any]] = run.get(sk) or {} if sk else {}
        for sl, ms in per_slice.items():
            if not isinstance(ms, dict):
                continue
            sn = _n(ms)
            for m, v in ms.items():
                if m in N_KEYS:
                    continue
                val, se, n = _value(v)
                if val is not None:
                    entries.append((name, str(sl), str(m), val, se, n or sn, f"{where}/{sk}/{sl}/{m}"))
        # stated overall vs the n-weighted (or plain) mean of the slice rows
        for m, v in run["metrics"].items():
            stated = _value(v)[0]
            rows = [(ms.get(m), _n(ms)) for ms in per_slice.values() if isinstance(ms, dict)]
            rows = [(_value(x)[0], n) for x, n in rows if _value(x)[0] is not None]
            if stated is None or len(rows) < 2:
                continue
            macro = sum(x for x, _ in rows) / len(rows)
            weighted = sum(x * n for x, n in rows) / sum(n for _, n in rows) if all(n for _, n in rows) else None
            computed = weighted if weighted is not None else macro
            if weighted is not None and abs(macro - stated) < abs(weighted - stated):
                computed = macro
            claims.append(
                {
                    "variant": name,
                    "what": f"metrics.{m}",
                    "stated": stated,
                    "computed": computed,
                    "how": f"{'n-weighted' if computed is weighted else 'plain'} mean of {len(rows)} {sk} rows",
                    "locator": f"{where}/metrics/{m}",
                    "scale": _scale(str(m), [stated, computed]),
                }
            )
        ik = next((k for k in ITEMS_KEYS if isinstance(run.get(k), list)), None)
        if ik:
            its = [o for o in run[ik] if isinstance(o, dict)]
            item_rows.extend((name, o) for o in its)
            skey = next((k for k in ITEM_SCORE if its and k in its[0]), None)
            target = next((m for m in _MEAN_OF_ITEMS if m in run["metrics"]), None)
            vals = [_value(o.get(skey))[0] for o in its] if skey else []
            vals = [x for x in vals if x is not None]
            stated = _value(run["metrics"].get(target))[0] if target else None
            if vals and stated is not None:
                scale = _scale(target, [stated])
                claims.append(
                    {
                        "variant": name,
                        "what": f"metrics.{target}",
                        "stated": stated / (scale or 1.0),
                        "computed": sum(vals) / len(vals),
                        "how": f"mean of {len(vals)} {ik}[].{skey}",
                        "locator": f"{where}/metrics/{target}",
                        "scale": 1.0,
                    }
                )
    aggs = []
    by_metric: dict[str, list[float]] = {}
    for _, _, m, val, *_ in entries:
        by_metric.setdefault(m, []).append(val)
    scales = {m: _scale(m, v) for m, v in by_metric.items()}
    for run, task, m, val, se, n, key in entries:
        aggs.append(
            AggMetric(
                task=task,
                metric=m,
                value=val,
                stderr=se,
                n=n,
                n_source="stated n" if n else "",
                scale=scales[m],
                key=key,
                variant=None if single else run,
            )
        )
    if item_rows:
        table = _items_table(path, item_rows, single)
    else:
        table = EvalTable(path, "summary")
        table.aggregate = {"runs": names}
        table.variants = names
    table.fmt = "summary"
    table.aggregates = aggs
    table.claims = claims
    # several runs in one file are named by it; a one-run file by its folder or file name (pairing),
    # since its `model` is often the same base model name on both sides
    table.named_from = "file" if single else "column"
    if single:
        table.hint = {"model": names[0]}
    if item_rows:
        item_metric = table.metric
        table.covers = {(a.task, a.metric) for a in aggs if a.metric in _MEAN_OF_ITEMS or a.metric == item_metric}
    return table


def _items_table(path: Path, items: list[tuple[str, dict[str, Any]]], single: bool) -> EvalTable:
    from probes.eval_slices.readers.records import SLICE_KEYS, ids_of, pick

    keys: list[str] = []
    for _, o in items[:1000]:
        keys.extend(k for k in o if k not in keys)
    skey = pick(keys, ITEM_SCORE) or "score"
    slk = pick(keys, SLICE_KEYS)
    variants = [v for v, _ in items]
    rows = [(i + 1, o) for i, (_, o) in enumerate(items)]
    cols = {
        "id": ids_of(rows, keys, variants),
        "slice": [str(o.get(slk) or "") for _, o in items] if slk else ["overall"] * len(items),
        "score": [o.get(skey) for _, o in items],
    }
    header = ["id", "slice", "score"]
    if not single:
        cols["variant"], header = variants, [*header, "variant"]
    table = EvalTable(path, "summary", line_offset=0)
    table = normalize(table, header, cols, variants[0])
    table.metric = str(skey)
    table.columns = keys
    return table
