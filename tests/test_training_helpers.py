"""Helpers for the training tests (no tests here): write logs in each format, run the check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from doctor.core.settings import Settings
from doctor.engine import check


def healthy_curve(n=200, seed=0, sigma=0.03):
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1)
    loss = (0.5 + 1.5 * np.exp(-t / (n / 5))) * np.exp(rng.normal(0, sigma, n))
    gn = np.exp(rng.normal(0, 0.15, n))
    lr = 2e-4 * np.minimum(1.0, t / 10) * (0.5 * (1 + np.cos(np.pi * t / n)))
    return t, loss, gn, lr


def write_state(path: Path, steps, loss, gn=None, lr=None, evals=(), **meta) -> Path:
    hist = []
    for i, st in enumerate(steps):
        e = {"epoch": float(st) / len(steps), "loss": float(loss[i]), "step": int(st)}
        if gn is not None:
            e["grad_norm"] = float(gn[i])
        if lr is not None:
            e["learning_rate"] = float(lr[i])
        hist.append(e)
    for st, v in evals:
        hist.append({"eval_loss": v, "eval_runtime": 1.0, "step": st})
    hist.sort(key=lambda e: e["step"])
    state = {
        "global_step": int(steps[-1]) if len(steps) else 0,
        "max_steps": int(steps[-1]) if len(steps) else 0,
        "logging_steps": 1,
        **meta,
        "log_history": hist,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))  # NaN/Infinity written as bare tokens, like HF
    return path


def run(path: Path, settings: Settings | None = None):
    rep = check([path], settings or Settings())
    return rep


def rules_of(rep) -> set[str]:
    return {f.rule for f in rep.findings}
