"""Per-item LLM-judge outputs: one record per (item, model[, turn]) with a judge's scores.

Shapes read: FastChat MT-Bench `model_judgment/*_single.jsonl` (question_id, model, judge, judgment,
score 1..10, turn; score -1 when the judge's rating could not be parsed), Prometheus-style
{instruction, response, feedback, score 1..5}, and rubric files with a dict of per-dimension scores
({"scores": {"correctness": 4, "helpfulness": 5}} or "rubric"/"ratings", numbers or {"score": n}),
with slice columns such as category and difficulty. Scores are divided by the scale (max_score /
scale field, else the smallest of 1, 5, 10, 100 that holds every value) so they compare on 0..1 with a
paired test on per-item differences; the messages give them back in the judge's own units.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from probes.eval_slices.evaltable import EvalTable, Problem
from probes.eval_slices.readers.records import build, pick, record_keys, records

JUDGE_KEYS = ("judge", "judgment", "judgement", "judge_model", "feedback", "rationale", "critique", "evaluator")
DIMENSION_KEYS = ("scores", "rubric", "ratings", "rubric_scores", "dimensions", "criteria")
SCORE_KEYS = ("score", "rating", "overall", "overall_score", "judge_score", "grade")
SCALE_KEYS = ("max_score", "scale", "score_max", "max_rating")
OUTPUT_KEYS = ("response", "output", "answer", "completion")


def looks_like(keys: list[str]) -> bool:
    low = {k.lower() for k in keys}
    return bool(low & set(JUDGE_KEYS)) and bool(low & (set(DIMENSION_KEYS) | set(SCORE_KEYS)))


def _number(v: Any) -> float:
    if isinstance(v, dict):
        v = v.get("score", v.get("rating"))
    if isinstance(v, bool) or v is None:
        return math.nan
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _dims(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _scale(values: np.ndarray, declared: float | None) -> float:
    if declared and declared > 0:
        return float(declared)
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 1.0
    return next((s for s in (1.0, 5.0, 10.0, 100.0) if top <= s), top)


def read(path: Path, default_variant: str | None) -> EvalTable:
    table = EvalTable(path, "judge")
    rows = records(path, table)
    keys = record_keys(rows)
    dim_key = pick(keys, DIMENSION_KEYS)
    score_key = pick(keys, SCORE_KEYS)
    dims: list[str] = []
    if dim_key is not None:
        for _, o in rows:
            d = o.get(dim_key)
            if isinstance(d, dict):
                dims.extend(str(k) for k in d if str(k) not in dims)
    raw: dict[str, np.ndarray] = {}
    for dname in dims:
        raw[dname] = np.array([_number(_dims(o.get(dim_key)).get(dname)) for _, o in rows])
    if score_key is not None:
        raw[str(score_key)] = np.array([_number(o.get(score_key)) for _, o in rows])
    if not raw:
        table.problems.append(
            Problem(
                "missing_columns",
                "no judge score found (score, rating or a scores dict)",
                "header",
                {"columns": keys},
                fatal=True,
            )
        )
        return table
    # FastChat writes -1 when no [[rating]] could be parsed: a failed judgment, not a score.
    failed = {k: np.flatnonzero(v < 0) for k, v in raw.items()}
    for k, idx in failed.items():
        if idx.size:
            lines = [rows[int(i)][0] for i in idx[:3]]
            table.problems.append(
                Problem(
                    "bad_scores",
                    f"{k}: {idx.size} judgment(s) without a usable rating (negative score, e.g. at line "
                    f"{', '.join(map(str, lines))}); those rows are left out of the comparison",
                    f"line {lines[0]}",
                    {"column": k, "failed": int(idx.size)},
                )
            )
            raw[k][idx] = np.nan
    declared = next((_number(rows[0][1].get(k)) for k in SCALE_KEYS if k in rows[0][1]), None)
    declared = declared if declared is not None and math.isfinite(declared) else None
    scales = {k: _scale(v, declared) for k, v in raw.items()}
    if score_key is not None:
        primary = str(score_key)
    else:
        primary = "rubric mean"
        stacked = np.vstack([raw[d] / scales[d] for d in dims])
        ok = ~np.isnan(stacked)
        count = ok.sum(axis=0)
        total = np.where(ok, stacked, 0.0).sum(axis=0)
        raw[primary] = np.where(count > 0, total / np.maximum(count, 1), np.nan)  # mean of the rated dimensions
        scales[primary] = 1.0
    score = list(raw[primary] / scales[primary])
    variant = default_variant or path.stem
    table = build(table, rows, keys, score, variant, output_key=pick(keys, OUTPUT_KEYS))
    if not table.usable:
        return table
    table.metric = primary
    table.metrics = {k: np.clip(v / scales[k], 0, 1) for k, v in raw.items() if k != primary}
    table.metric_scales = {k: scales[k] for k in raw}
    return table
