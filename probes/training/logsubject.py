"""One run's log prepared once for the TRN checks: the series, the recipe it ran with, the thresholds, and
every detection of the detectors that apply to its trainer. The checks (logchecks.py) only pick their
kinds out of it and turn them into findings with plot-ready evidence."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.model import Finding, Severity
from doctor.core.rules import Rule
from probes.training import detectors as d
from probes.training import detectors_rl as rl
from probes.training import trainers
from probes.training.detection import Detection, Kind
from probes.training.rules import (
    DIVERGENCE,
    GRAD_EXPLOSION,
    LOSS_SPIKE,
    LR_SCHEDULE,
    LR_TOO_HIGH,
    MANY_EPOCHS,
    NON_FINITE,
    NOT_LEARNING,
    OVERFITTING,
    PREF_ACC_SATURATED,
    PREF_CHOSEN_FALLING,
    PREF_DEGENERATE,
    RL_KL_BLOWUP,
    RL_REWARD_COLLAPSE,
    TOO_SHORT,
)
from probes.training.series import Problem, Series
from probes.training.stats import downsample_idx

Param = Callable[[Rule, str], Any]
MAX_POINTS = 300
# The detections that say the loss diverged (TRN003): a loss that never went below its start is then said
# once, as divergence.
_DIVERGED = frozenset({Kind.DIVERGENCE, Kind.SHORT_RISE, Kind.SHORT_JUMP})


def default_param(rule: Rule, name: str) -> Any:
    return rule.params[name]


@dataclass
class LogSubject:
    """The subject of the TRN checks (scope "artifact"): one run of a training log."""

    path: Path
    series: Series
    recipe: dict[str, Any] = field(default_factory=dict)
    param: Param = default_param
    locator_prefix: str = ""  # "run <name> " when a folder holds several runs

    def params(self, rule: Rule) -> dict[str, Any]:
        return {k: self.param(rule, k) for k in rule.params}

    @cached_property
    def family(self) -> str:
        """'preference' | 'rl' | 'sft', from the trainer the log's keys show."""
        return trainers.family(getattr(self.series, "trainer", "sft"))

    @cached_property
    def finite_loss_points(self) -> int:
        s = self.series
        return int((s.has_loss & np.isfinite(s.loss)).sum())

    @cached_property
    def min_points(self) -> int:
        """Loss points the history-based detectors need (TRN009's threshold)."""
        return self.param(TOO_SHORT, "min_points")

    @cached_property
    def detections(self) -> list[Detection]:
        return run_detectors(self)

    def of(self, kinds: Iterable[Kind]) -> list[Detection]:
        want = frozenset(kinds)
        return [x for x in self.detections if x.kind in want]

    def problems(self, *kinds: str) -> list[Problem]:
        return [p for p in self.series.problems if p.kind in kinds]

    def finding(self, rule: Rule, det: Detection) -> Finding:
        ev = dict(det.data)
        ev["points"] = points(self.series, det.marks)
        ev["marks"] = det.marks[:100]
        return rule.finding(
            self.path,
            det.message,
            locator=f"{self.locator_prefix}step {det.step}",
            evidence=ev,
            severity=None if det.severity is None else Severity(det.severity),
        )


def run_detectors(subject: LogSubject) -> list[Detection]:
    """Every detector that applies, in a fixed order; detectors needing history skip runs that are too
    short. The trainer (recognised by its logged keys) decides which apply: an RL trainer's loss (GRPO,
    PPO) is no learning signal (near 0 is normal), so the loss-shape detectors leave it to the reward/KL
    ones. One signature is said once: a loss that never went below its start is divergence when the loss
    diverged, and not also "flat"."""
    s, recipe, fam = subject.series, subject.recipe, subject.family
    out: list[Detection] = []
    nf = subject.params(NON_FINITE)
    out += d.non_finite(s, nf)
    out += d.eval_non_finite(s, nf)
    if fam != "rl":
        nl = subject.params(NOT_LEARNING)
        if subject.finite_loss_points >= subject.min_points:
            out += d.loss_spikes(s, subject.params(LOSS_SPIKE), bool(recipe.get("group_by_length")))
            pdiv = subject.params(DIVERGENCE)
            if fam == "preference":  # a DPO-style loss is bounded and noisy near its floor: x2 from best
                pdiv = {**pdiv, "rise": max(pdiv["rise"], pdiv["pref_rise"])}
            out += d.divergence(s, pdiv)
            learning = d.not_learning(s, nl)
        else:
            learning = [x for x in d.not_learning(s, nl) if x.kind == Kind.LOSS_ZERO]
            out += d.short_run(s, subject.params(DIVERGENCE), subject.min_points)
        if fam == "preference":  # a DPO loss at 0 is the degenerate-fit rule's case, not "nothing learned"
            learning = [x for x in learning if x.kind != Kind.LOSS_ZERO]
        stuck = d.stuck_loss(s, nl, subject.min_points)
        if any(x.kind in _DIVERGED for x in out):
            stuck = [x for x in stuck if x.kind != Kind.LOSS_NEVER_BELOW]  # said as divergence already
        if any(x.kind == Kind.LOSS_NEVER_BELOW for x in stuck):
            learning = [x for x in learning if x.kind != Kind.LOSS_FLAT]
        out += learning + stuck
    mgn = recipe.get("max_grad_norm")
    out += d.grad_explosion(s, subject.params(GRAD_EXPLOSION), mgn if isinstance(mgn, (int, float)) else None)
    over = subject.params(OVERFITTING)
    out += d.overfitting(s, over) or d.overfitting_rise(s, over)
    out += d.many_epochs(s, subject.params(MANY_EPOCHS))
    if fam == "preference":
        out += rl.degenerate_fit(s, subject.params(PREF_DEGENERATE))
        out += rl.chosen_falling(s, subject.params(PREF_CHOSEN_FALLING))
        out += rl.accuracy_saturated(s, subject.params(PREF_ACC_SATURATED))
    if fam == "rl" or s.trainer == "kto":
        out += rl.kl_blowup(s, subject.params(RL_KL_BLOWUP))
    if fam == "rl":
        out += rl.reward_collapse(s, subject.params(RL_REWARD_COLLAPSE))
    out += d.lr_too_high(s, subject.params(LR_TOO_HIGH), recipe, LR_TOO_HIGH)
    out += d.lr_schedule(s, subject.params(LR_SCHEDULE), recipe)
    return out


def _pts(a: np.ndarray) -> list:
    return [round(float(v), 7) if math.isfinite(v) else None for v in a]


def points(s: Series, marks: list[int] | None = None, limit: int = MAX_POINTS) -> dict[str, Any]:
    """Downsampled loss / grad_norm / lr curves for a finding's plot, keeping the marked steps."""
    keep = np.searchsorted(s.steps, np.asarray(marks or [], dtype=np.int64)) if marks else None
    if keep is not None:
        keep = keep[keep < len(s)]
    idx = downsample_idx(len(s), limit, keep)
    pts: dict[str, Any] = {
        "steps": [int(v) for v in s.steps[idx]],
        "loss": _pts(np.where(s.has_loss[idx], s.loss[idx], np.nan)),
    }
    if s.has_grad_norm.any():
        pts["grad_norm"] = _pts(np.where(s.has_grad_norm[idx], s.grad_norm[idx], np.nan))
    if s.has_learning_rate.any():
        pts["lr"] = _pts(np.where(s.has_learning_rate[idx], s.learning_rate[idx], np.nan))
    return pts
