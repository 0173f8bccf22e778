"""The normalized training series every log reader returns (numpy arrays, aligned by step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ("loss", "grad_norm", "learning_rate", "epoch")


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.float64)


@dataclass
class Problem:
    """Something met while reading that did not stop it. `kind`: "doc" (file-level, DOC001 through
    `ctx.unreadable`), "entry" (bad lines/values, TRN010) or "order" (negative/repeated steps, TRN011).
    `path`: the file it is about when that is not the log itself (a W&B run's files/config.yaml)."""

    kind: str
    locator: str
    text: str
    count: int = 1
    path: Path | None = None


@dataclass
class Series:
    """Per-step metrics of one run. Float arrays hold NaN where a value is missing; `has_*` masks tell a
    logged NaN apart from a missing value (LLaMA-Factory logs no grad_norm at all)."""

    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    loss: np.ndarray = field(default_factory=_empty)
    grad_norm: np.ndarray = field(default_factory=_empty)
    learning_rate: np.ndarray = field(default_factory=_empty)
    epoch: np.ndarray = field(default_factory=_empty)
    has_loss: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    has_grad_norm: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    has_learning_rate: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # eval metric name -> (steps, values)
    evals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # train-side preference/RL metrics (rewards/margins, logps/rejected, kl, reward, ...) -> (steps, values)
    extra: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    trainer: str = "sft"  # which trainer wrote it, by its logged keys (probes/training/trainers.py)
    meta: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    format: str = ""

    def __len__(self) -> int:
        return int(self.steps.size)

    def problem(self, kind: str, locator: str, text: str, path: Path | None = None) -> None:
        for p in self.problems:
            if p.kind == kind and p.text == text and p.path == path:
                p.count += 1
                return
        self.problems.append(Problem(kind, locator, text, path=path))


def _mask(values: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    return np.ones(values.size, dtype=bool) if present is None else present


def from_columns(
    steps: np.ndarray,
    loss: np.ndarray | None = None,
    grad_norm: np.ndarray | None = None,
    learning_rate: np.ndarray | None = None,
    epoch: np.ndarray | None = None,
    *,
    present: dict[str, np.ndarray] | None = None,
    series: Series | None = None,
) -> Series:
    """Build a Series from aligned columns; drops negative steps and keeps the latest value of a repeated
    step (a resumed run re-logs steps it had logged before), recording both as problems."""
    s = series if series is not None else Series()
    present = present or {}
    n = int(np.asarray(steps).size)
    steps = np.asarray(steps, dtype=np.int64)
    cols = {}
    for name, arr in (("loss", loss), ("grad_norm", grad_norm), ("learning_rate", learning_rate), ("epoch", epoch)):
        if arr is None:
            cols[name] = (np.full(n, np.nan), np.zeros(n, dtype=bool))
        else:
            a = np.asarray(arr, dtype=np.float64)
            cols[name] = (a, _mask(a, present.get(name)))
    keep = None
    if n and steps.min() < 0:
        neg = steps < 0
        s.problem("order", f"step {int(steps[neg][0])}", f"{int(neg.sum())} entries with a negative step were dropped")
        keep = ~neg
    if keep is not None:
        steps = steps[keep]
        cols = {k: (a[keep], m[keep]) for k, (a, m) in cols.items()}
    if steps.size > 1 and not bool(np.all(steps[1:] > steps[:-1])):
        back = np.flatnonzero(steps[1:] <= steps[:-1])
        i = int(back[0]) + 1
        s.problem(
            "order",
            f"step {int(steps[i])}",
            f"steps repeat or go backwards {back.size} times (first: step {int(steps[i])} after step "
            f"{int(steps[i - 1])}; a resumed run?); the latest value of each step was kept",
        )
        rev = steps[::-1]
        _, idx = np.unique(rev, return_index=True)
        order = steps.size - 1 - idx  # last occurrence of each step, ascending by step
        steps = steps[order]
        cols = {k: (a[order], m[order]) for k, (a, m) in cols.items()}
    s.steps = steps
    s.loss, s.has_loss = cols["loss"]
    s.grad_norm, s.has_grad_norm = cols["grad_norm"]
    s.learning_rate, s.has_learning_rate = cols["learning_rate"]
    s.epoch = cols["epoch"][0]
    return s


def eval_arrays(pairs: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros(0, dtype=np.int64), _empty()
    st = np.array([p[0] for p in pairs], dtype=np.int64)
    va = np.array([p[1] for p in pairs], dtype=np.float64)
    order = np.argsort(st, kind="stable")
    return st[order], va[order]
