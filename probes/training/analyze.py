"""Series (+ recipe) -> detections -> findings with plot-ready evidence, and the facts `doctor inspect`
shows. Shared by the probe, the watcher and the bench."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.model import Finding
from doctor.core.rules import DOC_UNREADABLE, Rule
from probes.training import detectors as d
from probes.training import detectors_rl as rl
from probes.training import trainers
from probes.training.rules import BY_KIND, PARTLY_UNREADABLE, STEP_ORDER, TOO_SHORT
from probes.training.stats import downsample_idx

Param = Callable[[Rule, str], Any]
MAX_POINTS = 300


def default_param(rule: Rule, name: str) -> Any:
    return rule.params[name]


def _params(rule: Rule, param: Param) -> dict[str, Any]:
    return {k: param(rule, k) for k in rule.params}


def detect(s, recipe: dict[str, Any], param: Param = default_param) -> list[tuple[Rule, d.Detection]]:
    """Every detector over the series; detectors needing history skip runs that are too short. The trainer
    (recognised by its logged keys) decides which apply: an RL trainer's loss (GRPO, PPO) is no learning
    signal (near 0 is normal), so the loss-shape detectors leave it to the reward/KL ones."""
    out: list[tuple[Rule, d.Detection]] = []
    P = {k: _params(r, param) for k, r in BY_KIND.items()}
    fam = trainers.family(getattr(s, "trainer", "sft"))

    def add(kind: str, dets: list[d.Detection]) -> None:
        out.extend((BY_KIND[x.kind if x.kind in BY_KIND else kind], x) for x in dets)

    add("non_finite", d.non_finite(s, P["non_finite"]))
    add("non_finite", d.eval_non_finite(s, P["non_finite"]))
    n_loss = int((s.has_loss & np.isfinite(s.loss)).sum())
    min_points = param(TOO_SHORT, "min_points")
    if fam != "rl":
        nl = P["not_learning"]
        if n_loss >= min_points:
            relaxed = bool(recipe.get("group_by_length"))
            add("loss_spike", d.loss_spikes(s, P["loss_spike"], relaxed))
            pdiv = P["divergence"]
            if fam == "preference":  # a DPO-style loss is bounded and noisy near its floor: x2 from best
                pdiv = {**pdiv, "rise": max(pdiv["rise"], pdiv["pref_rise"])}
            add("divergence", d.divergence(s, pdiv))
            learning = d.not_learning(s, nl)
        else:
            learning = [x for x in d.not_learning(s, nl) if "exactly 0.0" in x.message]
            add("divergence", d.short_run(s, P["divergence"], min_points))
        if fam == "preference":  # a DPO loss at 0 is the degenerate-fit rule's case, not "nothing learned"
            learning = [x for x in learning if "exactly 0.0" not in x.message]
        stuck = d.stuck_loss(s, nl, min_points)
        if any(r.id == BY_KIND["divergence"].id for r, _ in out):
            stuck = [x for x in stuck if "never went below" not in x.message]  # said as divergence already
        if any("never went below" in x.message for x in stuck):
            learning = [x for x in learning if "is flat" not in x.message]
        add("not_learning", learning + stuck)
    mgn = recipe.get("max_grad_norm")
    add("grad_explosion", d.grad_explosion(s, P["grad_explosion"], mgn if isinstance(mgn, (int, float)) else None))
    over = d.overfitting(s, P["overfitting"])
    add("overfitting", over or d.overfitting_rise(s, P["overfitting"]))
    add("many_epochs", d.many_epochs(s, P["many_epochs"]))
    if fam == "preference":
        add("pref_degenerate", rl.degenerate_fit(s, P["pref_degenerate"]))
        add("pref_chosen_falling", rl.chosen_falling(s, P["pref_chosen_falling"]))
        add("pref_accuracy_saturated", rl.accuracy_saturated(s, P["pref_accuracy_saturated"]))
    if fam == "rl" or s.trainer == "kto":
        add("rl_kl_blowup", rl.kl_blowup(s, P["rl_kl_blowup"]))
    if fam == "rl":
        add("rl_reward_collapse", rl.reward_collapse(s, P["rl_reward_collapse"]))
    add("lr_too_high", d.lr_too_high(s, P["lr_too_high"], recipe, BY_KIND["lr_too_high"]))
    add("lr_schedule", d.lr_schedule(s, P["lr_schedule"], recipe))
    return out


def _pts(a: np.ndarray) -> list:
    return [round(float(v), 7) if math.isfinite(v) else None for v in a]


def points(s, marks: list[int] | None = None, limit: int = MAX_POINTS) -> dict[str, Any]:
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


def findings(
    path: Path, s, recipe: dict[str, Any], param: Param = default_param, locator_prefix: str = ""
) -> list[Finding]:
    out: list[Finding] = []
    for p in s.problems:
        more = f" ({p.count} times)" if p.count > 1 else ""
        if p.kind == "doc":
            out.append(
                DOC_UNREADABLE.finding(path, f"{path.name}: {p.text}", locator=p.locator, evidence={"reason": p.text})
            )
        elif p.kind == "order":
            out.append(STEP_ORDER.finding(path, p.text + more, locator=p.locator))
        else:
            out.append(
                PARTLY_UNREADABLE.finding(
                    path,
                    f"{p.text}{more}; the rest of the log was analysed",
                    locator=p.locator,
                    evidence={"count": p.count},
                )
            )
    n_loss = int((s.has_loss & np.isfinite(s.loss)).sum())
    rl_only = trainers.family(getattr(s, "trainer", "sft")) == "rl" and bool(getattr(s, "extra", None))
    if len(s) and n_loss < param(TOO_SHORT, "min_points") and not (rl_only and n_loss == 0):
        out.append(
            TOO_SHORT.finding(
                path,
                f"only {n_loss} finite loss points logged (need {param(TOO_SHORT, 'min_points')}); "
                "spike/divergence/plateau checks skipped",
                locator="",
                evidence={"points": n_loss},
            )
        )
    for rule, det in detect(s, recipe, param):
        ev = dict(det.data)
        ev["points"] = points(s, det.marks)
        ev["marks"] = det.marks[:100]
        out.append(
            rule.finding(
                path,
                det.message,
                locator=f"{locator_prefix}step {det.step}",
                evidence=ev,
                severity=None if det.severity is None else type(rule.severity)(det.severity),
            )
        )
    return out


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
