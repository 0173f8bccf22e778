"""MLflow file store (mlruns/): mlruns/<exp>/<run>/metrics/<name> holds one "timestamp value step" line
per point; params/ and tags/ hold one file per key. Read as plain files: mlflow is never imported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from doctor.core.safeio import read_text_capped
from probes.training import trainers
from probes.training.readers.tfevents import TAGS
from probes.training.series import Series, eval_arrays, from_columns


def run_dirs(path: Path) -> list[Path]:
    """Run folders (holding meta.yaml + metrics/) at or under `path` (an mlruns/ or an experiment)."""
    if (path / "metrics").is_dir():
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in (".trash", "artifacts")]
        if "metrics" in dirs and "meta.yaml" in files:
            out.append(Path(root))
            dirs[:] = []
    return sorted(out)


def metric_files(run: Path) -> dict[str, Path]:
    base = run / "metrics"
    out = {}
    for root, _dirs, files in os.walk(base):
        for f in files:
            p = Path(root) / f
            out[p.relative_to(base).as_posix()] = p
    return out


def parse_metric_lines(data: bytes, name: str, s: Series, first_line: int = 1) -> tuple[list[int], list[float]]:
    steps, vals = [], []
    for i, line in enumerate(data.splitlines(), start=first_line):
        parts = line.split()
        if not parts:
            continue
        try:
            v = float(parts[1])
            st = int(parts[2]) if len(parts) > 2 else i - 1
        except (ValueError, IndexError):
            s.problem(
                "entry", f"metrics/{name} line {i}", f"metrics/{name} line {i} is not 'timestamp value step'; skipped"
            )
            continue
        steps.append(st)
        vals.append(v)
    return steps, vals


def _kv_dir(d: Path) -> dict[str, str]:
    out = {}
    if d.is_dir():
        for root, _dirs, files in os.walk(d):
            for f in files:
                p = Path(root) / f
                try:
                    out[p.relative_to(d).as_posix()] = read_text_capped(p, 1000, errors="replace").strip()
                except OSError:
                    pass
    return out


def series_from_metrics(metrics: dict[str, tuple[list[int], list[float]]], s: Series, overrides=None) -> Series:
    chosen = {}
    for field, names in TAGS.items():
        want = (overrides or {}).get(field)
        for n in (want,) if want else names:
            if n in metrics:
                chosen[field] = metrics[n]
                break
    tr = [np.asarray(chosen[k][0], dtype=np.int64) for k in ("loss", "grad_norm") if k in chosen]
    steps = np.unique(np.concatenate(tr)) if tr else np.zeros(0, dtype=np.int64)
    cols, present = {}, {}
    for field in ("loss", "grad_norm", "learning_rate", "epoch"):
        col, pres = np.full(steps.size, np.nan), np.zeros(steps.size, dtype=bool)
        if field in chosen and steps.size:
            st = np.asarray(chosen[field][0], dtype=np.int64)
            va = np.asarray(chosen[field][1], dtype=np.float64)
            pos = np.searchsorted(steps, st)
            ok = (pos < steps.size) & (steps[np.minimum(pos, steps.size - 1)] == st)
            col[pos[ok]], pres[pos[ok]] = va[ok], True
        cols[field], present[field] = col, pres
    from_columns(steps, present=present, series=s, **cols)
    for name, (st, va) in metrics.items():
        low = name.lower()
        if low.startswith(("eval_", "eval/", "val_")) and not low.endswith(("runtime", "_per_second")):
            s.evals[low.replace("/", "_")] = eval_arrays(list(zip(st, va)))
    trainers.attach(s, metrics)
    return s


def read_mlflow_run(run: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="mlflow")
    metrics = {}
    for name, p in metric_files(run).items():
        try:
            metrics[name] = parse_metric_lines(p.read_bytes(), name, s)
        except OSError as exc:
            s.problem("entry", f"metrics/{name}", f"cannot read metrics/{name}: {exc.strerror}")
    params = _kv_dir(run / "params")
    tags = _kv_dir(run / "tags")
    s.meta.update({"run_id": run.name, "experiment_id": run.parent.name})
    if "mlflow.runName" in tags:
        s.meta["run_name"] = tags["mlflow.runName"]
    s.meta["params"] = params
    if not metrics:
        s.problem("doc", "metrics/", "MLflow run has no metric files")
        return s
    return series_from_metrics(metrics, s, overrides)
