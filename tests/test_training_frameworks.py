"""Framework coverage: healthy logs as TRL, LLaMA-Factory (trainer_log.jsonl with eval lines), axolotl and
unsloth write them stay clean; recipes are judged by what they train (stage, method, optimizer)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.test_training_helpers import rules_of, run


def curve(n, seed, start=2.3, floor=0.85, noise=0.04):
    rng = np.random.default_rng(seed)
    t = np.arange(1, n + 1) / n
    loss = (floor + (start - floor) * np.exp(-5 * t)) * np.exp(rng.normal(0, noise, n))
    gn = 0.4 * (1 + 2 * (1 - np.exp(-20 * t))) * np.exp(rng.normal(0, 0.2, n))
    lr = 2e-4 * np.minimum(1, t / 0.03) * 0.5 * (1 + np.cos(math.pi * t))
    ev = floor * 1.08 + (start - floor) * np.exp(-5 * t)  # eval loss: smooth, a little above train
    return t, loss, gn, lr, ev


def trl_sft_state(path: Path, n=400, every=5, seed=0, unsloth=False) -> Path:
    """TRL SFTTrainer (unsloth trains through it too: the same log_history keys)."""
    t, loss, gn, lr, ev = curve(n, seed)
    hist = []
    for i in range(n):
        step = every * (i + 1)
        hist.append(
            {
                "entropy": round(float(1.1 - 0.3 * t[i]), 4),
                "epoch": round(float(2 * t[i]), 4),
                "grad_norm": float(gn[i]),
                "learning_rate": float(lr[i]),
                "loss": round(float(loss[i]), 4),
                "mean_token_accuracy": round(float(0.55 + 0.2 * t[i]), 4),
                "num_tokens": float(4096 * step),
                "step": step,
            }
        )
        if (i + 1) % 50 == 0:
            hist.append(
                {
                    "epoch": round(float(2 * t[i]), 4),
                    "eval_entropy": 1.0,
                    "eval_loss": round(float(ev[i]), 4),
                    "eval_mean_token_accuracy": 0.6,
                    "eval_num_tokens": float(4096 * step),
                    "eval_runtime": 12.3,
                    "eval_samples_per_second": 40.1,
                    "eval_steps_per_second": 5.0,
                    "step": step,
                }
            )
    hist.append({"epoch": 2.0, "step": every * n, "total_flos": 1.2e16, "train_loss": 1.1, "train_runtime": 900.0})
    body = {
        "global_step": every * n,
        "max_steps": every * n,
        "logging_steps": every,
        "eval_steps": 50 * every,
        "save_steps": 100 * every,
        "train_batch_size": 4,
        "num_train_epochs": 2,
        "log_history": hist,
        "best_metric": None,
        "best_model_checkpoint": None,
    }
    if unsloth:
        body["stateful_callbacks"] = {"TrainerControl": {"args": {"should_save": True}, "attributes": {}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2))
    return path


def axolotl_state(path: Path, n=300, seed=1) -> Path:
    t, loss, gn, lr, ev = curve(n, seed)
    hist = []
    for i in range(n):
        hist.append(
            {
                "epoch": round(float(3 * t[i]), 4),
                "grad_norm": float(gn[i]),
                "learning_rate": float(lr[i]),
                "loss": round(float(loss[i]), 4),
                "memory/device_mem_reserved(gib)": 21.4,
                "memory/max_mem_active(gib)": 18.2,
                "memory/max_mem_allocated(gib)": 18.0,
                "ppl": round(float(math.exp(loss[i])), 4),
                "step": i + 1,
                "tokens/total": 8192 * (i + 1),
                "tokens/train_per_sec_per_gpu": 3100.0,
                "tokens/trainable": 6000 * (i + 1),
            }
        )
        if (i + 1) % 30 == 0:
            hist.append(
                {
                    "epoch": round(float(3 * t[i]), 4),
                    "eval_loss": round(float(ev[i]), 4),
                    "eval_ppl": round(float(math.exp(ev[i])), 4),
                    "eval_runtime": 8.1,
                    "step": i + 1,
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "global_step": n,
                "max_steps": n,
                "logging_steps": 1,
                "log_history": hist,
                "train_batch_size": 2,
                "save_steps": 100,
            },
            indent=2,
        )
    )
    return path


def llamafactory_log(path: Path, n=200, every=5, seed=2, eval_nan=False) -> Path:
    """LLaMA-Factory's LogCallback: one JSON line per log; eval lines carry eval_loss and no loss; falsy
    values are left out; lr, not learning_rate; no grad_norm."""
    t, loss, _gn, lr, ev = curve(n, seed)
    total = every * n
    lines = []
    for i in range(n):
        step = every * (i + 1)
        rec = {
            "current_steps": step,
            "total_steps": total,
            "loss": round(float(loss[i]), 4),
            "lr": float(lr[i]),
            "epoch": round(float(3 * t[i]), 2),
            "percentage": round(100 * step / total, 2),
            "elapsed_time": "0:01:00",
            "remaining_time": "0:10:00",
        }
        lines.append({k: v for k, v in rec.items() if v})
        if (i + 1) % 40 == 0:
            e = float("nan") if eval_nan else round(float(ev[i]), 4)
            lines.append(
                {
                    "current_steps": step,
                    "total_steps": total,
                    "eval_loss": e,
                    "epoch": round(float(3 * t[i]), 2),
                    "percentage": round(100 * step / total, 2),
                    "elapsed_time": "0:01:10",
                    "remaining_time": "0:09:50",
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


ALARMS = lambda rep: {f.rule for f in rep.findings if f.severity.value != "info"}  # noqa: E731


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: trl_sft_state(p / "trainer_state.json"),
        lambda p: trl_sft_state(p / "trainer_state.json", unsloth=True, seed=4),
        lambda p: axolotl_state(p / "trainer_state.json"),
        lambda p: llamafactory_log(p / "trainer_log.jsonl"),
    ],
    ids=["trl-sft", "unsloth", "axolotl", "llama-factory"],
)
def test_healthy_framework_logs_stay_clean(tmp_path, writer):
    rep = run(writer(tmp_path))
    assert ALARMS(rep) == set(), [f.message for f in rep.findings]
    facts = rep.artifacts[0].facts
    assert facts["points"] >= 200 and facts["evals"]["eval_loss"]["points"] >= 5


def test_llamafactory_eval_nan_lines(tmp_path):
    rep = run(llamafactory_log(tmp_path / "trainer_log.jsonl", eval_nan=True))
    [f] = [f for f in rep.findings if f.rule == "TRN001"]
    assert "eval_loss is nan at 5 of 5 evaluations" in f.message and rep.exit_code == 1


# ---------------------------------------------------------------- recipes judged by what they train


def cfg(tmp_path: Path, name: str, text: str):
    (tmp_path / name).write_text(text)
    return run(tmp_path / name)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # LLaMA-Factory reward model with LoRA at 1e-4: its own stage, not DPO
        (
            "lf_rm.yaml",
            "model_name_or_path: m\nstage: rm\nfinetuning_type: lora\nlearning_rate: 1.0e-4\n"
            "warmup_ratio: 0.1\nbf16: true\n",
        ),
        # LLaMA-Factory DPO with LoRA at 5e-6 and full SFT at 1e-5
        (
            "lf_dpo.yaml",
            "model_name_or_path: m\nstage: dpo\nfinetuning_type: lora\npref_beta: 0.1\n"
            "learning_rate: 5.0e-6\nwarmup_ratio: 0.1\nbf16: true\n",
        ),
        (
            "lf_full.yaml",
            "model_name_or_path: m\nstage: sft\nfinetuning_type: full\nlearning_rate: 1.0e-5\n"
            "warmup_ratio: 0.1\nbf16: true\n",
        ),
        # axolotl pretraining with Muon at 0.02
        (
            "ax_muon.yaml",
            "base_model: m\npretraining_dataset: d\noptimizer: muon\nlearning_rate: 0.02\n"
            "warmup_steps: 100\nbf16: true\nmax_steps: 1000\n",
        ),
        # axolotl QLoRA at 2e-4 and LoRA DPO at 5e-6
        (
            "ax_qlora.yaml",
            "base_model: m\nadapter: qlora\nload_in_4bit: true\nlearning_rate: 0.0002\nwarmup_steps: 10\nbf16: auto\n",
        ),
        ("ax_dpo.yaml", "base_model: m\nrl: dpo\nadapter: lora\nlearning_rate: 5.0e-6\nwarmup_steps: 10\nbf16: true\n"),
    ],
)
def test_framework_example_recipes_get_no_lr_warning(tmp_path, name, text):
    rep = cfg(tmp_path, name, text)
    assert "CFG001" not in rules_of(rep) and not [f for f in rep.findings if f.severity.value == "error"], [
        f.message for f in rep.findings
    ]


def test_lr_judged_by_stage_and_method_with_range_and_source(tmp_path):
    rep = cfg(
        tmp_path,
        "dpo_full.yaml",
        "model_name_or_path: m\nstage: dpo\nfinetuning_type: full\n"
        "learning_rate: 1.0e-4\nwarmup_ratio: 0.1\nbf16: true\n",
    )
    [f] = [f for f in rep.findings if f.rule == "CFG001"]
    assert "DPO full fine-tuning" in f.message and "usual range 5e-7..5e-6" in f.message
    assert "TRL DPOConfig default" in f.message and f.evidence["judged_as"] == "DPO full fine-tuning"
    (tmp_path / "dpo_full.yaml").unlink()
    rep = cfg(
        tmp_path,
        "sft_lora.yaml",
        "model_name_or_path: m\nstage: sft\nfinetuning_type: lora\n"
        "learning_rate: 1.0e-4\nwarmup_ratio: 0.1\nbf16: true\n",
    )
    assert "CFG001" not in rules_of(rep)  # the same 1e-4 is ordinary for LoRA SFT


def test_logged_lr_judged_by_the_trainer_the_keys_show(tmp_path):
    from tests.test_training_realistic import grpo, state

    log = grpo()
    for e in log:
        e["learning_rate"] = 1e-3
    rep = run(state(tmp_path / "trainer_state.json", log))
    [f] = [f for f in rep.findings if f.rule == "TRN007"]
    assert "GRPO with LoRA" in f.message and "usual range 1e-6..5e-5" in f.message


def test_llamafactory_use_muon_is_judged_as_muon(tmp_path):
    rep = cfg(
        tmp_path,
        "lf_muon.yaml",
        "model_name_or_path: m\nstage: pt\nfinetuning_type: full\nuse_muon: true\n"
        "learning_rate: 0.02\nwarmup_ratio: 0.05\nbf16: true\n",
    )
    assert "CFG001" not in rules_of(rep)
    assert rep.artifacts[0].facts["recipe"]["optim"] == "muon"
    rep = cfg(
        tmp_path,
        "lf_muon.yaml",
        "model_name_or_path: m\nstage: pt\nfinetuning_type: full\nuse_muon: true\n"
        "learning_rate: 0.5\nwarmup_ratio: 0.05\nbf16: true\n",
    )
    [f] = [f for f in rep.findings if f.rule == "CFG001"]
    assert "the Muon optimizer" in f.message and "usual range 5e-3..5e-2" in f.message
