"""Realistic training logs for bench/detection.py's second section: files in the formats real runs write
(HF Trainer / TRL trainer_state.json log_history, LLaMA-Factory trainer_log.jsonl), one generator per
labelled class of issue #14 (several variants each, randomized) and long healthy runs per framework
(TRL SFT, unsloth, axolotl, LLaMA-Factory, healthy DPO, healthy GRPO with near-zero loss, PPO).

Each generator returns (kind, variant, entries, meta); `write` puts it on disk the way the framework does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# class -> the rules that count as a hit for it
CLASSES = {
    "non_finite": {"TRN001"},
    "short_run": {"TRN002", "TRN003"},
    "stuck": {"TRN005"},
    "overfitting": {"TRN006", "TRN012"},
    "preference_rl": {"TRN013", "TRN014", "TRN015", "TRN016", "TRN017"},
}


def _sft_curve(rng, n, start=None, floor=None, noise=None):
    start = start or rng.uniform(1.6, 3.2)
    floor = floor or start * rng.uniform(0.3, 0.6)
    noise = noise or rng.choice([0.01, 0.03, 0.05, 0.08])
    t = np.arange(1, n + 1) / n
    tau = rng.uniform(0.08, 0.4)
    loss = (floor + (start - floor) * np.exp(-t / tau)) * np.exp(rng.normal(0, noise, n))
    gn = rng.uniform(0.2, 2.0) * (1 + rng.uniform(1, 5) * (1 - np.exp(-t / 0.05))) * np.exp(rng.normal(0, 0.2, n))
    peak = rng.choice([5e-5, 1e-4, 2e-4])
    lr = peak * np.minimum(1, t / 0.03) * 0.5 * (1 + np.cos(math.pi * t))
    ev = floor * rng.uniform(1.02, 1.15) + (start - floor) * np.exp(-t / tau)
    return t, loss, gn, lr, ev


def sft_entries(rng, n, every, epochs=3.0, evals=0, style="trl", ev_override=None, loss=None, gn_none=False):
    t, lo, gn, lr, ev = _sft_curve(rng, n)
    if loss is not None:
        lo = loss
    if ev_override is not None:
        ev = None
    out = []
    eval_every = max(1, n // evals) if evals else 0
    k = 0
    for i in range(n):
        step = every * (i + 1)
        e = {"epoch": round(float(epochs * t[i]), 4), "learning_rate": float(lr[i]), "loss": round(float(lo[i]), 4)}
        if not gn_none:
            e["grad_norm"] = float(gn[i])
        if style == "trl":
            e.update(num_tokens=float(2048 * step), mean_token_accuracy=round(float(0.5 + 0.3 * t[i]), 4))
        elif style == "axolotl":
            e.update(
                {
                    "ppl": round(float(math.exp(min(lo[i], 50))), 4),
                    "memory/max_mem_active(gib)": 17.5,
                    "tokens/total": 4096 * step,
                    "tokens/trainable": 3000 * step,
                }
            )
        e["step"] = step
        out.append(e)
        if eval_every and (i + 1) % eval_every == 0 and k < evals:
            v = ev_override[k] if ev_override is not None else round(float(ev[i]), 4)
            k += 1
            out.append(
                {
                    "epoch": e["epoch"],
                    "eval_loss": v,
                    "eval_runtime": 9.5,
                    "eval_samples_per_second": 21.0,
                    "step": step,
                }
            )
    return out


def state_doc(entries, **meta):
    steps = [e["step"] for e in entries]
    return {
        "best_metric": None,
        "best_model_checkpoint": None,
        "global_step": max(steps),
        "max_steps": max(steps),
        "logging_steps": 10,
        "eval_steps": 500,
        "save_steps": 500,
        "train_batch_size": 8,
        **meta,
        "log_history": entries,
    }


def write(folder: Path, fmt: str, entries, meta) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "llamafactory":
        total = max(e["step"] for e in entries)
        path = folder / "trainer_log.jsonl"
        lines = []
        for e in entries:
            rec = {
                "current_steps": e["step"],
                "total_steps": total,
                "loss": e.get("loss"),
                "eval_loss": e.get("eval_loss"),
                "lr": e.get("learning_rate"),
                "epoch": e.get("epoch"),
                "percentage": round(100 * e["step"] / total, 2),
                "elapsed_time": "0:01:00",
                "remaining_time": "0:05:00",
            }
            lines.append(json.dumps({k: v for k, v in rec.items() if v}))  # LLaMA-Factory drops falsy values
        path.write_text("\n".join(lines) + "\n")
        return path
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state_doc(entries, **meta), indent=1))
    return path


# ---------------------------------------------------------------- faulty runs, per class


def non_finite(rng):
    v = rng.choice(["train_nan", "masked", "eval_nan_all", "eval_inf_some", "lf_eval_nan"])
    n = int(rng.integers(60, 600))
    if v in ("train_nan", "masked"):
        e = sft_entries(rng, n, 5)
        k = int(rng.integers(n // 5, n - 5))
        for x in e[k:]:
            x["grad_norm"] = float("nan")
            x["loss"] = float("nan") if v == "train_nan" else 0.0
        return v, "hf", e, {}
    evals = int(rng.integers(3, 12))
    if v == "eval_inf_some":
        vals = [round(float(x), 4) for x in np.linspace(1.4, 1.0, evals)]
        for j in rng.choice(evals, size=int(rng.integers(1, max(2, evals // 2))), replace=False):
            vals[int(j)] = float(rng.choice([math.inf, math.nan]))
    else:
        vals = [math.nan] * evals
    e = sft_entries(rng, n, 5, evals=evals, ev_override=vals)
    if v == "lf_eval_nan":
        return v, "llamafactory", e, {}
    return v, "hf", e, {"best_metric": vals[0] if v == "eval_nan_all" else None}


def short_run(rng):
    v = rng.choice(["rise", "jump_stay", "jump_back"])
    n = int(rng.integers(4, 11))
    start = rng.uniform(0.8, 3.0)
    if v == "rise":
        factor = rng.uniform(3.5, 20)
        x = start * np.exp(np.linspace(0, math.log(factor), n)) * np.exp(rng.normal(0, 0.005, n))
        x = np.maximum.accumulate(x)
    else:
        j = int(rng.integers(1, n - (2 if v == "jump_stay" else 1)))
        x = start * np.exp(-0.03 * np.arange(n)) * np.exp(rng.normal(0, 0.02, n))
        jump = rng.uniform(4, 12)
        if v == "jump_stay":
            x[j:] = x[j:] * jump
        else:
            x[j] *= jump
    e = [
        {
            "epoch": round(0.05 * (i + 1), 3),
            "grad_norm": float(rng.uniform(0.5, 2)),
            "learning_rate": 2e-4,
            "loss": round(float(x[i]), 4),
            "step": 10 * (i + 1),
        }
        for i in range(n)
    ]
    return v, "hf", e, {}


def stuck(rng):
    v = rng.choice(["frozen", "never_improves", "zero_from_k", "zero_lf"])
    n = int(rng.integers(40, 400))
    if v == "never_improves":
        n = int(rng.integers(5, 120))
        start = rng.uniform(2, 8)
        walk = start * (1 + np.abs(np.cumsum(rng.normal(0, 0.01, n))) + np.linspace(0, rng.uniform(0, 0.05), n))
        walk[0] = start
        e = [
            {
                "epoch": round(i / n, 3),
                "grad_norm": float(rng.uniform(5, 50)),
                "learning_rate": float(rng.choice([1.0, 5.0])),
                "loss": round(float(walk[i]), 4),
                "step": 10 * (i + 1),
            }
            for i in range(n)
        ]
        return v, "hf", e, {}
    e = sft_entries(rng, n, 5, gn_none=(v == "zero_lf"))
    k = int(rng.integers(n // 5, n - 15))
    if v == "frozen":
        val = round(float(rng.uniform(0.5, 3)), 4)
        for x in e[k : k + int(rng.integers(10, 40))]:
            x["loss"] = val
    else:
        for x in e[k:]:
            x["loss"] = 0.0
    return v, "hf", e, {}  # zero_lf: no grad_norm logged (LLaMA-Factory-style keys in a trainer_state)


def overfitting(rng):
    v = rng.choice(["mild", "large", "many_epochs"])
    n = int(rng.integers(100, 800))
    if v == "many_epochs":
        return v, "hf", sft_entries(rng, n, 2, epochs=float(rng.integers(100, 600))), {}
    evals = int(rng.integers(6, 16))
    up = int(rng.integers(3, max(4, evals // 2)))
    best = rng.uniform(0.8, 1.6)
    down = list(np.linspace(best * rng.uniform(1.2, 1.5), best, evals - up))
    rise = rng.uniform(0.03, 0.12) if v == "mild" else rng.uniform(0.3, 0.8)
    ups = list(best * (1 + rise * (np.arange(1, up + 1) / up) ** rng.uniform(0.8, 1.5)))
    vals = [round(float(x), 4) for x in down + ups]
    e = sft_entries(rng, n, 5, evals=evals, ev_override=vals)
    train = [x for x in e if "loss" in x]
    for i, x in enumerate(train):  # an overfitting run's train loss keeps creeping down
        x["loss"] = round(x["loss"] * (1 - 0.15 * i / len(train)), 4)
    return v, "hf", e, {"save_steps": 100}


def _dpo(rng, n, kind="healthy"):
    out = []
    for i in range(1, n + 1):
        t = i / n
        margin = rng.uniform(0.5, 1.5) * t + rng.normal(0, 0.08)
        acc = float(np.clip(0.5 + 0.25 * t + rng.normal(0, 0.04), 0, 1))
        loss = -math.log(1 / (1 + math.exp(-margin))) + rng.normal(0, 0.01)
        lc, lrj = -300 - 15 * t + rng.normal(0, 4), -290 - 35 * t + rng.normal(0, 4)
        if kind == "degenerate":
            margin, loss, lrj = 2 + 60 * t, 0.69 * math.exp(-15 * t), -290 - 700 * t
        elif kind == "chosen_falls":
            lc, lrj = -300 - 150 * t + rng.normal(0, 4), -290 - 200 * t + rng.normal(0, 4)
        elif kind == "saturated":
            acc = 1.0 if i > 2 else 0.75
        out.append(
            {
                "epoch": round(t, 4),
                "grad_norm": float(abs(rng.normal(10, 3))),
                "learning_rate": 5e-7,
                "logits/chosen": -2.5,
                "logits/rejected": -2.4,
                "logps/chosen": lc,
                "logps/rejected": lrj,
                "loss": round(max(loss, 0.0), 4),
                "rewards/accuracies": acc,
                "rewards/chosen": 0.1 * margin,
                "rewards/margins": margin,
                "rewards/rejected": -0.9 * margin,
                "step": 10 * i,
            }
        )
    return out


def _grpo(rng, n, kind="healthy"):
    out = []
    top = rng.uniform(0.5, 2.0)
    for i in range(1, n + 1):
        t = i / n
        reward = 0.1 + top * (1 - math.exp(-t / rng.uniform(0.1, 0.3))) + rng.normal(0, 0.06)
        kl = 0.0 if i == 1 else 0.001 + rng.uniform(0.005, 0.02) * t + abs(rng.normal(0, 0.0005))
        if kind == "kl" and t > 0.5:
            kl = 0.02 * math.exp(rng.uniform(8, 14) * (t - 0.5))
        if kind == "collapse" and t > 0.6:
            reward = -0.3 + rng.normal(0, 0.05)
        out.append(
            {
                "completions/mean_length": 200 + rng.normal(0, 15),
                "epoch": round(t, 4),
                "frac_reward_zero_std": 0.1,
                "grad_norm": float(abs(rng.normal(0.3, 0.1))),
                "kl": kl,
                "learning_rate": 1e-6,
                "loss": 0.0 if i < 3 else round(float(rng.normal(0, 0.003)), 4),
                "num_tokens": 3000.0 * i,
                "reward": reward,
                "reward_std": 0.35,
                "step": i,
            }
        )
    return out


def _ppo(rng, n, blowup=False):
    out = []
    for i in range(1, n + 1):
        t = i / n
        kl = 2 + 10 * t + rng.normal(0, 0.5)
        if blowup and t > 0.5:
            kl = 10 * math.exp(rng.uniform(5, 8) * (t - 0.5))
        out.append(
            {
                "episode": 64 * i,
                "eps": 4,
                "loss/policy_avg": float(rng.normal(-0.01, 0.01)),
                "loss/value_avg": 0.2,
                "lr": 3e-6,
                "objective/entropy": 35.0,
                "objective/kl": kl,
                "objective/rlhf_reward": 0.5 + 0.5 * t,
                "objective/scores": 0.6 + 0.5 * t + rng.normal(0, 0.05),
                "policy/approxkl_avg": 0.01,
                "step": i,
            }
        )
    return out


def preference_rl(rng):
    v = rng.choice(["dpo_degenerate", "dpo_chosen_falls", "dpo_saturated", "grpo_kl", "grpo_collapse", "ppo_kl"])
    n = int(rng.integers(30, 300))
    if v.startswith("dpo"):
        return v, "hf", _dpo(rng, n, v[4:]), {}
    if v == "ppo_kl":
        return v, "hf", _ppo(rng, n, blowup=True), {}
    return v, "hf", _grpo(rng, n, v[5:]), {}


FAULTS = {
    "non_finite": non_finite,
    "short_run": short_run,
    "stuck": stuck,
    "overfitting": overfitting,
    "preference_rl": preference_rl,
}


# ---------------------------------------------------------------- healthy runs, per framework


def _plateau_evals(rng, evals):
    """Eval loss that falls and then flattens with +-0.3% noise: healthy, still converging."""
    best = rng.uniform(0.8, 1.6)
    t = np.arange(1, evals + 1) / evals
    return [
        round(float(best * (1 + 0.4 * math.exp(-t[i] / 0.15)) * (1 + rng.normal(0, 0.003))), 4) for i in range(evals)
    ]


def _bump(rng, n):
    """A fine-tune from an already-good base: starts low, bumps up +20..60% early, settles below the start."""
    t = np.arange(1, n + 1, dtype=float)
    start = rng.uniform(0.05, 0.3)
    settle = start * rng.uniform(0.5, 0.9)
    tp = max(3.0, rng.uniform(0.02, 0.1) * n)
    bump = 1 + rng.uniform(0.2, 0.6) * (t / tp) * np.exp(1 - t / tp)
    trend = settle + (start - settle) * np.exp(-np.maximum(t - 2 * tp, 0) / (rng.uniform(0.1, 0.4) * n))
    return trend * bump * np.exp(rng.normal(0, rng.choice([0.01, 0.03, 0.06]), n))


def healthy(rng):
    v = rng.choice(
        [
            "trl_sft",
            "unsloth",
            "axolotl",
            "llamafactory",
            "dpo",
            "grpo",
            "ppo",
            "short_sft",
            "sft_plateau",
            "sft_bump",
            "dpo_per_step",
        ]
    )
    n = int(rng.integers(200, 3000))
    if v == "sft_plateau":
        evals = int(rng.integers(8, 25))
        return v, "hf", sft_entries(rng, n, 5, evals=evals, ev_override=_plateau_evals(rng, evals)), {}
    if v == "sft_bump":
        return v, "hf", sft_entries(rng, n, 5, loss=_bump(rng, n)), {}
    if v == "dpo_per_step":  # logging_steps=1: one small batch per log, a very noisy loss
        e = _dpo(rng, int(rng.integers(100, 1500)))
        for x in e:
            x["loss"] = round(max(0.0, x["loss"] * float(np.exp(rng.normal(0, 0.25)))), 4)
        return v, "hf", e, {}
    if v in ("trl_sft", "unsloth"):
        return v, "hf", sft_entries(rng, n, 5, evals=int(rng.integers(0, 20))), {}
    if v == "axolotl":
        return v, "hf", sft_entries(rng, n, 1, evals=int(rng.integers(0, 20)), style="axolotl"), {}
    if v == "llamafactory":
        return v, "llamafactory", sft_entries(rng, n, 5, evals=int(rng.integers(0, 12)), style="lf", gn_none=True), {}
    if v == "dpo":
        return v, "hf", _dpo(rng, int(rng.integers(30, 600))), {}
    if v == "grpo":
        return v, "hf", _grpo(rng, int(rng.integers(30, 600))), {}
    if v == "ppo":
        return v, "hf", _ppo(rng, int(rng.integers(30, 400))), {}
    m = int(rng.integers(5, 15))
    return v, "hf", sft_entries(rng, m, 10), {}
