"""The training detectors on logs shaped like real runs write them (trainer_state.json log_history as HF
Trainer / TRL write it; LLaMA-Factory trainer_log.jsonl): eval-side NaN, short decisive runs, stuck and
never-improving loss, overfitting (mild and large), many epochs, preference and RL trainers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_training_helpers import run


def state(path: Path, entries: list[dict], **meta) -> Path:
    """A trainer_state.json as HF writes it: bare NaN/Infinity tokens, entries sorted by step."""
    steps = [e["step"] for e in entries]
    body = {
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": entries[-1].get("epoch", 1.0),
        "eval_steps": 500,
        "global_step": max(steps),
        "logging_steps": 10,
        "max_steps": max(steps),
        "num_train_epochs": 3,
        "save_steps": 500,
        "train_batch_size": 8,
        **meta,
        "log_history": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2))
    return path


def sft(n=60, every=10, start=2.2, floor=0.9, seed=0, epochs=3.0, lr=2e-4):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        t = i / n
        out.append(
            {
                "epoch": round(epochs * t, 4),
                "grad_norm": float(0.6 * math.exp(rng.normal(0, 0.15))),
                "learning_rate": lr * (1 - t),
                "loss": round(float((floor + (start - floor) * math.exp(-4 * t)) * math.exp(rng.normal(0, 0.02))), 4),
                "step": i * every,
            }
        )
    return out


def with_evals(entries, values, every):
    ev = [
        {"epoch": 0.0, "eval_loss": v, "eval_runtime": 3.2, "eval_samples_per_second": 31.0, "step": every * (k + 1)}
        for k, v in enumerate(values)
    ]
    return sorted(entries + ev, key=lambda e: (e["step"], "eval_loss" in e))


def findings(path):
    return run(path).findings


def by_rule(fs, rule):
    return [f for f in fs if f.rule == rule]


def errors(fs):
    return [f for f in fs if f.severity.value == "error"]


# ---------------------------------------------------------------- 1. eval-side non-finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_eval_loss_non_finite_is_a_non_finite_error(tmp_path, bad):
    log = with_evals(sft(n=60), [bad, bad, bad], every=200)
    fs = findings(state(tmp_path / "trainer_state.json", log, best_metric=bad, eval_steps=200))
    [f] = by_rule(fs, "TRN001")
    assert f.severity.value == "error" and f.evidence["side"] == "eval"
    assert "eval_loss" in f.message and "3 of 3 evaluations" in f.message and "200, 400, 600" in f.message
    assert "best_metric stored as" in f.message


def test_some_eval_points_infinite(tmp_path):
    log = with_evals(sft(n=60), [1.1, float("inf"), 0.95], every=200)
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", log)), "TRN001")
    assert "1 of 3 evaluations (steps 400)" in f.message


# ---------------------------------------------------------------- 2. short runs


def short(values, every=10):
    return [{"epoch": 0.1 * i, "learning_rate": 2e-4, "loss": v, "step": every * (i + 1)} for i, v in enumerate(values)]


def test_short_monotonic_rise_is_divergence_with_thin_evidence(tmp_path):
    fs = findings(state(tmp_path / "trainer_state.json", short([1.9, 2.4, 3.3, 4.8, 7.1, 9.9, 14.2])))
    [f] = by_rule(fs, "TRN003")
    assert "rose monotonically" in f.message and "x7.5" in f.message and "only 7 logged points" in f.message
    assert by_rule(fs, "TRN009")  # and how little evidence there is


def test_short_jump_that_stays_is_divergence_and_one_that_comes_back_a_spike(tmp_path):
    fs = findings(state(tmp_path / "a" / "trainer_state.json", short([2.1, 2.0, 1.9, 9.5, 9.8, 9.6, 9.7])))
    [f] = by_rule(fs, "TRN003")
    assert "jumped x5.0" in f.message and "stayed there" in f.message
    fs = findings(state(tmp_path / "b" / "trainer_state.json", short([2.1, 2.0, 9.0, 1.9, 1.8, 1.7])))
    assert by_rule(fs, "TRN002") and not by_rule(fs, "TRN003")


def test_short_healthy_run_gets_only_the_too_short_note(tmp_path):
    fs = findings(state(tmp_path / "trainer_state.json", short([2.3, 1.9, 1.6, 1.45, 1.38, 1.31, 1.29, 1.27])))
    assert {f.rule for f in fs} == {"TRN009"}


# ---------------------------------------------------------------- 3. stuck / never improving / zero


def test_frozen_loss_is_not_learning(tmp_path):
    log = sft(n=60)
    for e in log[20:40]:
        e["loss"] = 2.3026
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", log)), "TRN005")
    assert f.severity.value == "error" and "frozen at exactly 2.3026 for 20 consecutive logs" in f.message


def test_lr_5_run_that_never_improves(tmp_path):
    # the new user's LoRA run at lr 5.0: 6.09 -> 6.13 over 80 steps, logged every 10
    vals = [6.09, 6.21, 6.15, 6.3, 6.11, 6.18, 6.25, 6.13]
    fs = findings(state(tmp_path / "trainer_state.json", short(vals)))
    [f] = by_rule(fs, "TRN005")
    assert f.severity.value == "error" and "never went below its starting level" in f.message
    assert "6.09" in f.message and "6.13" in f.message


def test_exact_zero_loss_from_some_step_on(tmp_path):
    log = sft(n=60)
    for e in log[30:]:
        e["loss"] = 0.0
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", log)), "TRN005")
    assert "exactly 0.0" in f.message and f.locator == "step 310"


# ---------------------------------------------------------------- 4. overfitting


@pytest.mark.parametrize(
    ("evals", "severity", "pct"),
    [
        ([1.20, 1.02, 0.97, 0.98, 0.99, 1.00], "warning", "+3.1%"),
        ([1.2, 0.9, 0.8, 0.95, 1.05, 1.18], "error", "+47.5%"),
    ],
)
def test_overfitting_names_best_step_rise_and_checkpoint(tmp_path, evals, severity, pct):
    log = with_evals(sft(n=60, floor=0.3), evals, every=100)
    fs = findings(state(tmp_path / "trainer_state.json", log, eval_steps=100, save_steps=100))
    [f] = by_rule(fs, "TRN006")
    assert f.severity.value == severity and pct in f.message
    best = 100 * (int(np.argmin(evals)) + 1)
    assert f.evidence["best_step"] == best and f"checkpoint-{best}" in f.message


def test_hundreds_of_epochs_on_tiny_data(tmp_path):
    log = sft(n=60, epochs=300.0)
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", log)), "TRN012")
    assert "300 epochs" in f.message and "about 16 samples" in f.message  # 2 steps/epoch x batch 8


# ---------------------------------------------------------------- 5. preference and RL trainers


def dpo(n=40, seed=0, lr=5e-6, degenerate=False, chosen_falls=False, saturate=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        t = i / n
        margin = 0.9 * t + rng.normal(0, 0.05)
        acc = min(1.0, 0.55 + 0.2 * t + rng.normal(0, 0.03))
        loss = -math.log(1 / (1 + math.exp(-margin))) + rng.normal(0, 0.01)
        lc, lr_ = -280 - 10 * t + rng.normal(0, 3), -265 - 25 * t + rng.normal(0, 3)
        if degenerate:
            margin, loss, lr_ = 2 + 60 * t, max(0.0, 0.69 * math.exp(-12 * t)), -265 - 600 * t
        if chosen_falls:
            lc, lr_ = -280 - 120 * t + rng.normal(0, 3), -265 - 160 * t + rng.normal(0, 3)
        if saturate:
            acc = 1.0 if i > 2 else 0.8
        out.append(
            {
                "epoch": round(t, 4),
                "grad_norm": float(abs(rng.normal(8, 2))),
                "learning_rate": lr,
                "logits/chosen": -2.7,
                "logits/rejected": -2.6,
                "logps/chosen": lc,
                "logps/rejected": lr_,
                "loss": round(loss, 4),
                "rewards/accuracies": acc,
                "rewards/chosen": 0.1 * margin,
                "rewards/margins": margin,
                "rewards/rejected": -0.9 * margin,
                "step": 10 * i,
            }
        )
    return out


def grpo(n=60, seed=0, kl_blowup=False, collapse=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        t = i / n
        reward = 0.2 + 1.2 * (1 - math.exp(-5 * t)) + rng.normal(0, 0.05)
        kl = 0.0 if i == 1 else 0.002 + 0.01 * t + abs(rng.normal(0, 0.001))
        if kl_blowup and t > 0.5:
            kl = 0.02 * math.exp(12 * (t - 0.5))
        if collapse and t > 0.6:
            reward = -0.4 + rng.normal(0, 0.05)
        out.append(
            {
                "completions/mean_length": 180 + rng.normal(0, 10),
                "epoch": round(t, 4),
                "frac_reward_zero_std": 0.1,
                "grad_norm": float(abs(rng.normal(0.2, 0.05))),
                "kl": kl,
                "learning_rate": 1e-6,
                "loss": 0.0 if i < 3 else round(float(rng.normal(0.0, 0.002)), 4),
                "num_tokens": 2000.0 * i,
                "reward": reward,
                "reward_std": 0.4,
                "rewards/accuracy_reward/mean": reward,
                "step": i,
            }
        )
    return out


def test_healthy_grpo_with_near_zero_loss_gets_no_error(tmp_path):
    fs = findings(state(tmp_path / "trainer_state.json", grpo()))
    assert not errors(fs) and not by_rule(fs, "TRN005"), [f.message for f in fs]
    assert run(tmp_path / "trainer_state.json").artifacts[0].facts["trainer"] == "grpo"


def test_healthy_dpo_is_clean(tmp_path):
    fs = findings(state(tmp_path / "trainer_state.json", dpo()))
    assert [f.rule for f in fs if f.rule.startswith("TRN")] == [], [f.message for f in fs]


def test_dpo_degenerate_fit(tmp_path):
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", dpo(degenerate=True))), "TRN013")
    assert f.severity.value == "error" and "rewards/margins" in f.message and "logps/rejected" in f.message
    assert not by_rule(findings(tmp_path / "trainer_state.json"), "TRN005")  # not "nothing learned"


def test_dpo_chosen_logps_falling(tmp_path):
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", dpo(chosen_falls=True))), "TRN014")
    assert "logps/chosen fell" in f.message


def test_dpo_accuracy_saturating(tmp_path):
    [f] = by_rule(findings(state(tmp_path / "trainer_state.json", dpo(saturate=True))), "TRN015")
    assert "reached 1 at log 3" in f.message


def test_grpo_kl_blowup_and_reward_collapse(tmp_path):
    [f] = by_rule(findings(state(tmp_path / "a" / "trainer_state.json", grpo(kl_blowup=True))), "TRN016")
    assert f.severity.value == "error" and f.message.startswith("kl blew up")
    [f] = by_rule(findings(state(tmp_path / "b" / "trainer_state.json", grpo(collapse=True))), "TRN017")
    assert "reward collapsed" in f.message and "below its starting level" in f.message


def test_ppo_without_a_loss_key_is_read_and_judged(tmp_path):
    rng = np.random.default_rng(3)
    log = [
        {
            "episode": 64 * i,
            "eps": 3,
            "lr": 3e-6,
            "loss/policy_avg": float(rng.normal(-0.01, 0.01)),
            "loss/value_avg": 0.3,
            "objective/entropy": 40.0,
            "objective/kl": 1.0 + 0.1 * i if i < 20 else 1.0 * math.exp(0.3 * (i - 20)) * 3,
            "objective/rlhf_reward": 0.5 + 0.01 * i,
            "objective/scores": 0.6 + 0.01 * i,
            "policy/approxkl_avg": 0.01,
            "step": i,
        }
        for i in range(1, 41)
    ]
    fs = findings(state(tmp_path / "trainer_state.json", log))
    assert by_rule(fs, "TRN016") and not by_rule(fs, "TRN009"), [f.message for f in fs]


def test_fast_parser_and_nan_fallback_read_the_same_series(tmp_path):
    from probes.training.readers.hf import read_trainer_state

    log = with_evals(sft(n=60), [1.1, 1.0, 0.95], every=200)
    clean = read_trainer_state(state(tmp_path / "a" / "trainer_state.json", log))  # orjson
    log[5]["grad_norm"] = float("nan")  # a bare NaN token: orjson refuses, Python's json reads it
    nan = read_trainer_state(state(tmp_path / "b" / "trainer_state.json", log))
    assert np.array_equal(clean.steps, nan.steps) and np.array_equal(clean.loss, nan.loss)
    assert np.isnan(nan.grad_norm[5]) and np.isfinite(clean.grad_norm[5])
    assert np.array_equal(clean.evals["eval_loss"][1], nan.evals["eval_loss"][1])


def test_grpo_logged_to_tensorboard_is_recognised(tmp_path):
    """HF's TensorBoard callback writes TRL's keys under train/: the same trainer, the same rules."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(tmp_path))
    for e in grpo(kl_blowup=True):
        vals = [
            summary_pb2.Summary.Value(tag=f"train/{k}", simple_value=float(e[k]))
            for k in ("loss", "grad_norm", "learning_rate", "kl", "reward", "reward_std", "completions/mean_length")
        ]
        w.add_event(event_pb2.Event(step=e["step"], wall_time=1.0, summary=summary_pb2.Summary(value=vals)))
    w.close()
    rep = run(next(tmp_path.glob("events.out.tfevents*")))
    assert rep.artifacts[0].facts["trainer"] == "grpo"
    assert {f.rule for f in errors(rep.findings)} == {"TRN016"}, [f.message for f in rep.findings]
