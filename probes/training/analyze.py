"""A run's log (+ recipe) -> findings with plot-ready evidence, and the facts `doctor inspect` shows.
Shared by the probe, the watcher and the bench; the rules' checks are in logchecks.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.model import Finding
from doctor.core.rules import Rule
from probes.training.detection import Detection
from probes.training.logchecks import RULE_OF_KIND, in_log_order, run_log_checks, unreadable_findings
from probes.training.logsubject import MAX_POINTS, LogSubject, Param, default_param, points

__all__ = ["MAX_POINTS", "LogSubject", "default_param", "detect", "facts", "findings", "points"]


def detect(s, recipe: dict[str, Any], param: Param = default_param) -> list[tuple[Rule, Detection]]:
    """Every detection over the series with the rule its check raises it under (the detection bench)."""
    return [(RULE_OF_KIND[x.kind], x) for x in LogSubject(Path(), s, recipe, param).detections]


def findings(
    path: Path, s, recipe: dict[str, Any], param: Param = default_param, locator_prefix: str = ""
) -> list[Finding]:
    """Every finding of one run in the order the log shows them, file-level problems (DOC001) included:
    what `doctor watch` prints. The probe reports those through `ctx.unreadable` instead."""
    subject = LogSubject(path, s, recipe, param, locator_prefix)
    return in_log_order(subject, unreadable_findings(subject) + run_log_checks(subject))


def facts(s, recipe: dict[str, Any]) -> dict[str, Any]:
    f: dict[str, Any] = {"format": s.format, "points": len(s)}
    if getattr(s, "trainer", "sft") != "sft":
        f["trainer"] = s.trainer
    if len(s):
        f["first_step"], f["last_step"] = int(s.steps[0]), int(s.steps[-1])
    lo = s.loss[s.has_loss & np.isfinite(s.loss)]
    if lo.size:
        f.update(first_loss=float(lo[0]), last_loss=float(lo[-1]), min_loss=float(lo.min()))
    gn = s.grad_norm[s.has_grad_norm & np.isfinite(s.grad_norm)]
    if gn.size:
        f["max_grad_norm"] = float(gn.max())
    lr = s.learning_rate[s.has_learning_rate & np.isfinite(s.learning_rate)]
    if lr.size:
        f["peak_lr"], f["last_lr"] = float(lr.max()), float(lr[-1])
    f["non_finite_points"] = int(
        ((s.has_loss & ~np.isfinite(s.loss)) | (s.has_grad_norm & ~np.isfinite(s.grad_norm))).sum()
    )
    f["has_grad_norm"] = bool(s.has_grad_norm.any())
    for name, (st, va) in s.evals.items():
        ok = np.isfinite(va)
        if ok.any():
            f.setdefault("evals", {})[name] = {
                "points": int(st.size),
                "best": float(va[ok].min()),
                "best_step": int(st[ok][np.argmin(va[ok])]),
                "last": float(va[-1]),
            }
    f["method"] = recipe.get("method", "unknown")
    for k in ("learning_rate", "max_grad_norm", "lr_scheduler_type", "warmup_ratio", "bf16", "fp16", "compute_dtype"):
        if k in recipe:
            f.setdefault("recipe", {})[k] = recipe[k]
    for k, v in s.meta.items():
        if k not in ("params", "config", "summary") and isinstance(v, (int, float, str, bool, list, dict)):
            f.setdefault(k, v)
    return f
