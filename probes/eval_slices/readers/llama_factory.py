"""LLaMA-Factory outputs: `all_results.json` / `eval_results.json` / `predict_results.json` (the HF
Trainer metrics dicts it saves) and `generated_predictions.jsonl` (one {"prompt", "predict", "label"}
line per example, written by `do_predict` with `predict_with_generate`).

Metrics keys are `<split>_<metric>`: `eval_loss`, `eval_accuracy`, `predict_bleu-4`, `predict_rouge-1`,
`predict_rouge-2`, `predict_rouge-l` (BLEU/ROUGE are means × 100), plus timing keys (`_runtime`,
`_samples_per_second`, …) and `epoch`/`train_*`/`total_flos`, which are not eval metrics. No stderr is
written; n is `<split>_samples` when present, else runtime × samples/s (HF rounds samples/s to 3 digits).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.probe import ReadError
from doctor.core.safeio import read_json_file
from probes.eval_slices import scoring
from probes.eval_slices.aggregate import AggMetric, count
from probes.eval_slices.evaltable import EvalTable, Problem
from probes.eval_slices.readers.columns import normalize
from probes.eval_slices.readers.jsonl import json_lines

RESULT_FILES = ("all_results.json", "eval_results.json", "predict_results.json", "test_results.json")
PREDICTIONS = "generated_predictions.jsonl"
SPLITS = ("eval", "predict", "test")
_TIMING = (
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "model_preparation_time",
    "samples",
    "jit_compilation_time",
)
_POINTS = ("bleu", "rouge", "chrf")
_SLICE_KEYS = ("slice", "task", "category", "domain", "subject", "dataset")


def is_results(path: Path) -> bool:
    return path.name.lower() in RESULT_FILES


def metric_keys(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(split, metric) for the eval metrics in a Trainer metrics dict."""
    out = []
    for key, v in data.items():
        split, sep, metric = key.partition("_")
        if (
            not sep
            or split not in SPLITS
            or metric in _TIMING
            or isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
        ):
            continue
        if metric.startswith("mem_") or metric.endswith(("_runtime", "_per_second")):
            continue
        out.append((split, metric))
    return out


def read_results(path: Path) -> EvalTable:
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise ReadError(path, "not a JSON object of metrics", "/")
    keys = metric_keys(data)
    if not keys:
        raise ReadError(path, "no eval_* / predict_* metric in this Trainer metrics file", "/")
    aggs = []
    splits: dict[str, dict[str, float]] = {}
    for split, metric in keys:
        n, how = _n_of(data, split)
        low = metric.lower()
        scale = 100.0 if low.startswith(_POINTS) else (None if "loss" in low or "perplexity" in low else 1.0)
        value = float(data[f"{split}_{metric}"])
        splits.setdefault(split, {})[metric] = value
        aggs.append(
            AggMetric(
                task=split,
                metric=metric,
                value=value,
                n=n,
                n_source=how,
                higher_is_better=scale is not None,
                scale=scale,
                key=f"/{split}_{metric}",
            )
        )
    table = EvalTable(path, "llama_factory_results")
    table.aggregate = {"splits": splits, "n": {s: _n_of(data, s)[0] for s in splits}}
    table.aggregates = aggs
    table.variants = [path.parent.name]
    table.link = str(path.parent)
    return table


def _n_of(data: dict[str, Any], split: str) -> tuple[int | None, str]:
    n = count(data.get(f"{split}_samples"))
    if n is not None:
        return n, f"{split}_samples"
    rt, sps = data.get(f"{split}_runtime"), data.get(f"{split}_samples_per_second")
    if count(rt) and count(sps):  # both finite and positive
        n = count(float(rt) * float(sps))
        if n is not None:
            return n, f"≈ {split}_runtime × {split}_samples_per_second"
    return None, ""


def read_predictions(path: Path, default_variant: str | None) -> EvalTable:
    """Per-example generations scored with the metrics LLaMA-Factory reports (see scoring.GENERATION)."""
    table = EvalTable(path, "llama_factory_predictions", line_offset=1)
    objects, bad = json_lines(path)
    rows = [(ln, o) for ln, o in objects if "predict" in o and "label" in o]
    bad += [ln for ln, o in objects if not ("predict" in o and "label" in o)]
    bad.sort()
    if not rows:
        raise ReadError(path, 'no {"prompt", "predict", "label"} lines', f"line {bad[0]}" if bad else "")
    if bad:
        table.problems.append(
            Problem(
                "bad_lines",
                f"{len(bad)} line(s) are not prediction objects and were skipped (first: line {bad[0]})",
                f"line {bad[0]}",
                {"count": len(bad)},
            )
        )
    ids, slices = [], []
    seen: dict[str, int] = {}
    slice_key = next((k for k in _SLICE_KEYS if k in rows[0][1]), None)
    for _, o in rows:
        # The same eval set in the same order on both sides: the prompt text (+ its repeat count) is the id.
        h = hashlib.blake2b(str(o.get("prompt", "")).encode("utf-8", "replace"), digest_size=8).hexdigest()
        k = seen[h] = seen.get(h, -1) + 1
        ids.append(f"{h}#{k}" if k else h)
        slices.append(str(o.get(slice_key) or "") if slice_key else "all")
    names = list(scoring.GENERATION)
    scores = {m: np.empty(len(rows)) for m in names}
    for i, (_, o) in enumerate(rows):
        pred, ref = scoring.tokens(o.get("predict")), scoring.tokens(o.get("label"))
        for m in names:
            scores[m][i] = scoring.GENERATION[m](pred, ref)
    variant = default_variant or path.parent.name
    table = normalize(
        table, ["id", "slice", "score"], {"id": ids, "slice": slices, "score": list(scores[names[0]])}, variant
    )
    table.metric = names[0]
    table.metrics = {m: scores[m] for m in names[1:]}
    table.scored_by = scoring.GENERATION_HOW
    table.covers = {("predict", m) for m in names}
    table.columns = ["prompt", "predict", "label", *([slice_key] if slice_key else [])]
    table.link = str(path.parent)
    return table
