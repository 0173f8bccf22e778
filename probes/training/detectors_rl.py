"""Failure signatures of preference (DPO, IPO, ORPO, KTO, CPO/SimPO) and RL (PPO, GRPO, RLOO) trainers,
over the trainer metrics a reader kept in `Series.extra`. Pure functions like detectors.py."""

from __future__ import annotations

import numpy as np

from probes.training.detection import Detection, Kind
from probes.training.detectors import g
from probes.training.series import Series
from probes.training.stats import trailing_median


def _get(s: Series, *names: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    for n in names:
        if n in s.extra:
            st, va = s.extra[n]
            ok = np.isfinite(va)
            if ok.sum() >= 3:
                return n, st[ok], va[ok]
    return None


def _head_tail(v: np.ndarray) -> tuple[float, float]:
    k = max(2, v.size // 5)
    return float(np.median(v[:k])), float(np.median(v[-k:]))


def degenerate_fit(s: Series, p: dict) -> list[Detection]:
    """DPO-style loss collapsing to ~0 while the reward margin explodes and the rejected log-probs run off
    to large negatives: the policy wins the objective by pushing rejected answers to nothing, not by
    preferring the chosen ones (over-optimisation; usually too high an LR or beta too small)."""
    ok = s.has_loss & np.isfinite(s.loss)
    if ok.sum() < p["min_points"]:
        return []
    loss = s.loss[ok]
    _, lt = _head_tail(loss)
    if lt > p["loss_max"]:
        return []
    mg, rj = _get(s, "rewards/margins"), _get(s, "logps/rejected")
    parts, hits = [], 0
    if mg is not None:
        m0, m1 = _head_tail(mg[2])
        parts.append(f"rewards/margins {g(m0)} -> {g(m1)}")
        hits += m1 >= p["margin_max"]
    if rj is not None:
        r0, r1 = _head_tail(rj[2])
        parts.append(f"logps/rejected {g(r0)} -> {g(r1)}")
        hits += (r0 - r1) >= p["rejected_drop"]
    if not hits:
        return []
    i = int(np.flatnonzero(ok)[int(np.argmax(loss <= p["loss_max"]))])
    return [
        Detection(
            Kind.PREF_DEGENERATE,
            int(s.steps[i]),
            f"preference loss collapsed to {g(lt)} (threshold {p['loss_max']:g}) while "
            + ", ".join(parts)
            + f" (thresholds: margin >= {p['margin_max']:g}, rejected log-probs falling >= {p['rejected_drop']:g}):"
            " a degenerate fit, not a better policy",
            marks=[int(s.steps[i])],
            data={"loss_tail": lt, "signals": parts},
        )
    ]


def chosen_falling(s: Series, p: dict) -> list[Detection]:
    """logps/chosen falling along with logps/rejected: the margin grows because both fall (likelihood
    displacement), so the chosen answers become less likely too."""
    ch, rj = _get(s, "logps/chosen"), _get(s, "logps/rejected")
    if ch is None or rj is None or ch[2].size < p["min_points"]:
        return []
    c0, c1 = _head_tail(ch[2])
    r0, r1 = _head_tail(rj[2])
    drop = c0 - c1
    if not (drop >= p["chosen_drop"] and drop >= p["chosen_rel"] * abs(c0) and r1 < r0):
        return []
    k = int(np.argmax(ch[2] <= c0 - p["chosen_drop"]))
    return [
        Detection(
            Kind.PREF_CHOSEN_FALLING,
            int(ch[1][k]),
            f"logps/chosen fell {g(c0)} -> {g(c1)} ({-drop:+.1f} nats, {drop / max(abs(c0), 1e-9):.0%}; "
            f"thresholds {p['chosen_drop']:g} nats and {p['chosen_rel']:.0%}) along with logps/rejected "
            f"{g(r0)} -> {g(r1)}: the chosen answers are getting less likely too",
            marks=[int(ch[1][k])],
            data={"chosen": [c0, c1], "rejected": [r0, r1]},
        )
    ]


def accuracy_saturated(s: Series, p: dict) -> list[Detection]:
    """rewards/accuracies at 1.0 within the first few logs and staying there: the pairs are trivially
    separable (leakage, chosen/rejected differing in a surface feature, a swapped column)."""
    acc = _get(s, "rewards/accuracies")
    if acc is None or acc[2].size < p["min_points"]:
        return []
    _, st, va = acc
    sat = va >= p["level"]
    if not sat.any():
        return []
    i = int(np.argmax(sat))
    early = max(int(p["within"]), int(p["within_frac"] * va.size))
    if i >= early or float(np.mean(va[i:] >= p["level"])) < p["hold"]:
        return []
    return [
        Detection(
            Kind.PREF_ACC_SATURATED,
            int(st[i]),
            f"rewards/accuracies reached {g(float(va[i]))} at log {i + 1} of {va.size} (step {int(st[i])}; threshold: "
            f"within the first {early} logs) and stayed >= {p['level']:g} at {np.mean(va[i:] >= p['level']):.0%} of "
            "the logs after: the preference pairs are trivially separable",
            marks=[int(st[i])],
            data={"step": int(st[i]), "logs": int(va.size)},
        )
    ]


def kl_blowup(s: Series, p: dict) -> list[Detection]:
    """The KL to the reference policy growing far past its early level and an absolute bound: the policy
    is running away from the reference (reward hacking, too high an LR, KL coefficient too small)."""
    kl = _get(s, "kl", "objective/kl", "policy/approxkl_avg")
    if kl is None or kl[2].size < p["min_points"]:
        return []
    name, st, va = kl
    limit = p["ppo_max"] if name.startswith(("objective/", "policy/")) else p["kl_max"]
    w = max(3, va.size // 10)
    m = trailing_median(va, w)
    nz = va[va > 0]
    early = float(np.median(nz[: max(3, nz.size // 5)])) if nz.size else 0.0
    over = (m >= limit) & (m >= p["ratio"] * max(early, 1e-12))
    if not over.any():
        return []
    i = int(np.argmax(over))
    return [
        Detection(
            Kind.RL_KL_BLOWUP,
            int(st[i]),
            f"{name} blew up: rolling median ({w} logs) {g(float(m[i]))} at step {int(st[i])} vs early level "
            f"{g(early)} (x{float(m[i]) / max(early, 1e-12):.0f}; thresholds {g(limit)} and x{p['ratio']:g}); "
            f"max {g(float(va.max()))}",
            marks=[int(st[i])],
            data={"metric": name, "value": float(m[i]), "early": early, "threshold": limit},
        )
    ]


def reward_collapse(s: Series, p: dict) -> list[Detection]:
    """The mean reward rose and then fell back below where it started (rolling medians), held to the end:
    a collapse (reward hacking undone, policy degenerate, generation broken)."""
    rw = _get(s, "reward", "objective/scores", "objective/rlhf_reward", "env/reward_mean", "ppo/mean_scores")
    if rw is None or rw[2].size < p["min_points"]:
        return []
    name, st, va = rw
    w = max(3, va.size // 10)
    m = trailing_median(va, w)
    start = float(m[w - 1])
    b = int(np.argmax(m))
    best = float(m[b])
    noise = float(np.median(np.abs(np.diff(va)))) / 0.954 + 1e-12
    tail = float(np.median(va[-w:]))
    gain = best - start
    if gain < p["min_gain"] * noise or b >= va.size - w:
        return []
    if tail > start - p["below"] * gain or best - tail < p["min_drop"] * noise:
        return []
    j = b + int(np.argmax(m[b:] <= start))
    return [
        Detection(
            Kind.RL_REWARD_COLLAPSE,
            int(st[j]),
            f"{name} collapsed: rose from {g(start)} to {g(best)} at step {int(st[b])}, then fell to {g(tail)} "
            f"(median of the last {w} logs), below its starting level: the policy lost what it had learned",
            marks=[int(st[b]), int(st[j])],
            data={"metric": name, "start": start, "best": best, "best_step": int(st[b]), "last": tail},
        )
    ]
