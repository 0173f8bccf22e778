"""lm-evaluation-harness (v0.4) outputs: `results_<timestamp>.json` and the `samples_<task>_<timestamp>.jsonl`
files EvaluationTracker writes beside it (`--log_samples`).

results JSON: `results` {task: {"<metric>,<filter>": value, "<metric>_stderr,<filter>": stderr | "N/A",
"alias": …}}, `configs`, `versions`, `n-shot`, `higher_is_better` {task: {metric: bool}}, `n-samples`
{task: {original, effective}}, `config` {model, model_args (str "k=v,…" or dict), …}, `model_name`.
A samples line: doc_id, doc, target, arguments, resps, filtered_resps, filter, metrics [names], and one
key per metric. With several filters (gsm8k: strict-match, flexible-extract) each doc has one line per
filter; every (metric, filter) becomes a metric named as in the results file (`exact_match,strict-match`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.probe import ReadError
from doctor.core.safeio import read_json_file
from probes.eval_slices.aggregate import AggMetric, count
from probes.eval_slices.evaltable import EvalTable, Problem
from probes.eval_slices.readers.columns import normalize, parse_score
from probes.eval_slices.readers.jsonl import json_lines

# lm-evaluation-harness per-sample metric keys, in order of preference.
LM_EVAL_METRICS = ("acc", "exact_match", "acc_norm", "em", "f1", "pass@1", "bleu", "rouge1", "mc1", "mc2")

SAMPLES = re.compile(r"^samples_(?P<task>.+?)(?:_(?P<ts>\d{4}-\d{2}-\d{2}T[\d\-.:]+))?\.jsonl$")
RESULTS = re.compile(r"^results(?:_(?P<ts>\d{4}-\d{2}-\d{2}T[\d\-.:]+))?\.json$")
_POINTS = ("bleu", "rouge", "chrf", "ter")
_UNBOUNDED = ("perplexity", "ppl", "bits_per_byte", "bpb", "loss")


def is_results(path: Path) -> bool:
    return path.name.lower().startswith("results") and path.name.lower().endswith(".json")


def is_samples(path: Path) -> bool:
    if SAMPLES.match(path.name):
        return True
    if not path.name.lower().endswith(".jsonl"):
        return False
    with path.open("rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="replace")
    return '"doc_id"' in head and '"slice"' not in head.split("\n", 1)[0]


def parse_model_args(value: Any) -> dict[str, str]:
    """`pretrained=x,peft=y,dtype=bfloat16` (or the dict form) as a dict of strings."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    out: dict[str, str] = {}
    if isinstance(value, str):
        for part in value.split(","):
            k, sep, v = part.partition("=")
            if sep and k.strip():
                out[k.strip()] = v.strip()
    return out


def _scale(metric: str) -> float | None:
    low = metric.split(",", 1)[0].lower()
    if any(w in low for w in _UNBOUNDED):
        return None
    if any(low.startswith(w) for w in _POINTS):
        return 100.0
    return 1.0


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def read_results(path: Path) -> EvalTable:
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ReadError(path, "no `results` object: not an lm-evaluation-harness results file", "/results")
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    hib = data.get("higher_is_better") if isinstance(data.get("higher_is_better"), dict) else {}
    nsamp = data.get("n-samples") if isinstance(data.get("n-samples"), dict) else {}
    tasks: dict[str, dict[str, float]] = {}
    aggs: list[AggMetric] = []
    entries = list(data["results"].items())
    if isinstance(data.get("groups"), dict):  # 0.4.0–0.4.2 keep group aggregates apart from the tasks
        entries += [(g, m) for g, m in data["groups"].items() if g not in data["results"]]
    for task, metrics in entries:
        if not isinstance(metrics, dict):
            continue
        tasks[task] = {k: v for k, v in metrics.items() if _num(v) is not None}
        ns = nsamp.get(task) if isinstance(nsamp.get(task), dict) else {}
        n = count(ns.get("effective", ns.get("original")))
        dirs = hib.get(task) if isinstance(hib.get(task), dict) else {}
        for key, v in metrics.items():
            value = _num(v)
            name, _, filt = key.partition(",")
            if value is None or name.endswith("_stderr") or key == "alias":
                continue
            err_key = f"{name}_stderr,{filt}" if filt else f"{name}_stderr"
            d = dirs.get(name)
            aggs.append(
                AggMetric(
                    task=str(task),
                    metric=key,
                    value=value,
                    stderr=_num(metrics.get(err_key)),  # "N/A" (bootstrap_iters=0) -> None
                    n=n,
                    n_source="n-samples effective" if n else "",
                    higher_is_better=d if isinstance(d, bool) else None,
                    scale=_scale(key),
                    key=f"/results/{task}/{key}",
                )
            )
    margs = parse_model_args(cfg.get("model_args"))
    table = EvalTable(path, "lm_eval_results")
    table.aggregate = {
        "tasks": tasks,
        "model": data.get("model_name") or cfg.get("model"),
        "model_args": cfg.get("model_args"),
        "n_samples": {t: v.get("effective") for t, v in nsamp.items() if isinstance(v, dict)},
        "n_shot": data.get("n-shot") if isinstance(data.get("n-shot"), dict) else {},
        "versions": data.get("versions") if isinstance(data.get("versions"), dict) else {},
    }
    table.aggregates = aggs
    table.hint = {
        "model": data.get("model_name") or margs.get("pretrained") or cfg.get("model"),
        "pretrained": margs.get("pretrained") or margs.get("model"),
        "peft": margs.get("peft") or margs.get("lora_local_path") or margs.get("lora"),
    }
    m = RESULTS.match(path.name)
    table.link = (m.group("ts") or "") if m else ""
    table.variants = [path.parent.name]
    return table


def read_samples(path: Path, default_variant: str | None) -> EvalTable:
    m = SAMPLES.match(path.name)
    task = m.group("task") if m else path.stem
    table = EvalTable(path, "lm_eval_samples", line_offset=1)
    table.link = (m.group("ts") or "") if m else ""
    objects, bad = json_lines(path)
    # filter -> doc_id -> (line, object); the first filter seen is the primary one
    by_filter: dict[str, dict[Any, tuple[int, dict[str, Any]]]] = {}
    names: list[str] = []
    for lineno, obj in objects:
        if "doc_id" not in obj:
            bad.append(lineno)
            continue
        filt = str(obj.get("filter") or "none")
        by_filter.setdefault(filt, {}).setdefault(obj["doc_id"], (lineno, obj))
        if not names:
            listed = [k for k in obj.get("metrics", []) if isinstance(k, str) and k in obj]
            names = listed or [k for k in LM_EVAL_METRICS if k in obj]
    bad.sort()
    if not by_filter:
        raise ReadError(
            path, "no lm-evaluation-harness sample lines (JSON objects with doc_id)", f"line {bad[0]}" if bad else ""
        )
    if bad:
        table.problems.append(
            Problem(
                "bad_lines",
                f"{len(bad)} line(s) are not sample objects and were skipped (first: line {bad[0]})",
                f"line {bad[0]}",
                {"count": len(bad)},
            )
        )
    if not names:
        table.problems.append(
            Problem(
                "missing_columns",
                f"no per-sample metric found (expected one of {', '.join(LM_EVAL_METRICS)})",
                "",
                {"columns": ["doc_id"]},
                fatal=True,
            )
        )
        return table
    filters = list(by_filter)
    primary = by_filter[filters[0]]
    ids = list(primary)
    variant = default_variant or path.parent.name or "lm_eval"
    cols = {
        "id": [f"{task}/{i}" for i in ids],
        "slice": [task] * len(ids),
        "score": [primary[i][1].get(names[0]) for i in ids],
    }
    table = normalize(table, ["id", "slice", "score"], cols, variant)
    table.metric = f"{names[0]},{filters[0]}"
    for filt in filters:
        rows = by_filter[filt]
        for name in names:
            key = f"{name},{filt}"
            if key == table.metric:
                continue
            vals = [rows[i][1].get(name) if i in rows else None for i in ids]
            if any(v is not None for v in vals):
                arr = np.array([parse_score(v)[0] for v in vals], dtype=np.float64)
                arr[(arr < 0) | (arr > 1)] = np.nan
                table.metrics[key] = arr
    table.covers = {(task, table.metric), *((task, k) for k in table.metrics)}
    table.columns = ["doc_id", "filter", *names]
    return table
