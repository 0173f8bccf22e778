"""Every training rule fires on the case it is for, and healthy runs stay clean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_training_helpers import healthy_curve, rules_of, run, write_state

TRN = lambda rep: {r for r in rules_of(rep) if r.startswith(("TRN", "CFG", "DOC"))}  # noqa: E731


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_healthy_runs_stay_clean(tmp_path, seed):
    t, loss, gn, lr = healthy_curve(n=150 + 300 * seed, seed=seed, sigma=[0.01, 0.03, 0.06, 0.1][seed])
    p = write_state(tmp_path / "trainer_state.json", t, loss, gn, lr, evals=[(50, 1.0), (100, 0.9)])
    rep = run(p)
    assert TRN(rep) == set(), [f.message for f in rep.findings]
    facts = rep.artifacts[0].facts
    assert facts["points"] == len(t) and facts["first_step"] == 1 and facts["peak_lr"] > 0


def test_trn001_nan_and_masked_signature(tmp_path):
    t, loss, gn, lr = healthy_curve()
    loss[120:], gn[120:] = 0.0, np.nan  # HF masks NaN losses to 0.0; grad_norm shows NaN
    rep = run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr))
    f = next(f for f in rep.findings if f.rule == "TRN001")
    assert "first non-finite value at step 121" in f.message and "0.0" in f.message
    assert f.evidence["masked"] is True and f.locator == "step 121"
    assert len(f.evidence["points"]["steps"]) <= 300 and 121 in f.evidence["marks"]
    assert "TRN005" not in rules_of(rep)  # masked zeros are not "not learning"


def test_trn002_spike(tmp_path):
    t, loss, gn, lr = healthy_curve(n=300)
    loss[150] *= 4
    rep = run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr))
    f = next(f for f in rep.findings if f.rule == "TRN002")
    assert f.evidence["first_step"] == 151 and "z=" in f.message and f.evidence["baseline"] > 0


def test_trn002_relaxed_with_group_by_length(tmp_path):
    t, loss, gn, lr = healthy_curve(n=300)
    loss[150] *= 1.8
    p = write_state(tmp_path / "run" / "trainer_state.json", t, loss, gn, lr)
    assert "TRN002" in rules_of(run(p))
    (p.parent / "training_args.json").write_text(
        json.dumps({"group_by_length": True, "learning_rate": 2e-4, "warmup_ratio": 0.03})
    )
    assert "TRN002" not in rules_of(run(p.parent))


def test_trn003_divergence(tmp_path):
    t, loss, gn, lr = healthy_curve(n=400)
    loss[200:] *= np.exp(np.arange(200) * np.log(2) / 60)
    f = next(
        f for f in run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr)).findings if f.rule == "TRN003"
    )
    assert 200 < f.evidence["step"] < 300 and "rolling median" in f.message


def test_trn004_grad_explosion_history_and_clip(tmp_path):
    t, loss, gn, lr = healthy_curve(n=300)
    gn[200] = 500.0
    rep = run(write_state(tmp_path / "a" / "trainer_state.json", t, loss, gn, lr))
    assert any(f.rule == "TRN004" and f.evidence["first_step"] == 201 for f in rep.findings)
    gn2 = np.full(300, 40.0)
    p = write_state(tmp_path / "b" / "trainer_state.json", t, loss, gn2, lr)
    (p.parent / "training_args.json").write_text(
        json.dumps({"max_grad_norm": 1.0, "learning_rate": 2e-4, "warmup_ratio": 0.03})
    )
    assert any("max_grad_norm" in f.message for f in run(p.parent).findings if f.rule == "TRN004")


def test_trn004_gradual_growth(tmp_path):
    t, loss, gn, lr = healthy_curve(n=300)
    gn[100:] *= np.exp(np.log(200) * np.minimum(np.arange(200) / 60, 1.0))  # x200 over 60 steps, then held
    rep = run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr))
    f = next(f for f in rep.findings if f.rule == "TRN004" and "growing steadily" in f.message)
    ev = f.evidence
    assert 100 < ev["first_step"] <= 170 and ev["factor"] > ev["threshold"] == 30.0
    assert ev["early_steps"] == [4, 13] and 0.5 < ev["early_level"] < 2.0
    assert "early level" in f.message and "threshold x30" in f.message and ev["first_step"] in ev["marks"]
    assert f.locator == f"step {ev['first_step']}" and len(ev["points"]["steps"]) <= 300


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trn004_healthy_lora_early_rise_not_flagged(tmp_path, seed):
    # lora_B starts at 0: grad_norm starts low, rises x10 over ~30 steps, then decays; odd warmup points
    t, loss, gn, lr = healthy_curve(n=400, seed=seed)
    gn = gn * 0.1 * (1 + 9 * (1 - np.exp(-t / 30))) * (0.5 + 0.5 * np.exp(-t / 150))
    gn[:2] *= [0.3, 3.0]
    rep = run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr))
    assert not {r for r in rules_of(rep) if r.startswith("TRN")}, [f.message for f in rep.findings]


def test_trn004_spike_on_noisy_unstable_run(tmp_path):
    # grad-norm noise so large (sigma 0.7 in log) that no z-score fires: a x40 jump is flagged by its size
    t, loss, gn, lr = healthy_curve(n=120)
    gn = 5.0 * np.exp(np.random.default_rng(7).normal(0, 0.7, 120))
    gn[80] = 40 * np.median(gn[:80])
    rep = run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr))
    f = next(f for f in rep.findings if f.rule == "TRN004")
    assert f.evidence["first_step"] == 81 and "x20 alone" in f.message


def test_trn005_zero_and_flat(tmp_path):
    t, loss, gn, lr = healthy_curve(n=100)
    z = loss.copy()
    z[40:] = 0.0
    assert "TRN005" in rules_of(run(write_state(tmp_path / "a" / "trainer_state.json", t, z, gn, lr)))
    flat = np.full(100, 2.0) * np.exp(np.random.default_rng(0).normal(0, 0.01, 100))
    rep = run(write_state(tmp_path / "b" / "trainer_state.json", t, flat, gn, lr))
    assert any(f.rule == "TRN005" and "flat" in f.message for f in rep.findings)


def test_trn006_overfitting(tmp_path):
    t, loss, gn, lr = healthy_curve(n=400)
    evals = [(50, 1.2), (100, 1.0), (150, 0.95), (200, 1.05), (300, 1.2), (400, 1.4)]
    rep = run(
        write_state(
            tmp_path / "trainer_state.json", t, loss, gn, lr, evals=evals, best_model_checkpoint="out/checkpoint-150"
        )
    )
    f = next(f for f in rep.findings if f.rule == "TRN006")
    assert f.evidence["best_step"] == 150 and "checkpoint-150" in f.message


def test_trn007_trn008_lr(tmp_path):
    t, loss, gn, lr = healthy_curve(n=100)
    rep = run(write_state(tmp_path / "a" / "trainer_state.json", t, loss, gn, np.full(100, 5e-2)))
    assert {"TRN007", "TRN008"} <= rules_of(rep)
    lr0 = lr.copy()
    lr0[40:] = 0.0
    rep = run(write_state(tmp_path / "b" / "trainer_state.json", t, loss, gn, lr0))
    assert any(f.rule == "TRN008" and "stuck at 0" in f.message for f in rep.findings)
    p = write_state(tmp_path / "c" / "trainer_state.json", t, loss, gn, np.minimum(1, t / 10) * 2e-4)
    (p.parent / "training_args.json").write_text(
        json.dumps({"lr_scheduler_type": "cosine", "learning_rate": 2e-4, "warmup_ratio": 0.1, "max_steps": 100})
    )
    assert any(f.rule == "TRN008" and "never decayed" in f.message for f in run(p.parent).findings)


def test_trn009_short_run(tmp_path):
    t, loss, gn, lr = healthy_curve(n=10)
    assert "TRN009" in rules_of(run(write_state(tmp_path / "trainer_state.json", t, loss, gn, lr)))


def test_cfg_rules(tmp_path):
    (tmp_path / "axolotl.yaml").write_text(
        "base_model: x\nadapter: qlora\nload_in_4bit: true\nlearning_rate: 5e-2\nwarmup_steps: 0\nfp16: true\n"
        "bnb_config_kwargs:\n  bnb_4bit_quant_type: fp4\n  bnb_4bit_use_double_quant: false\nmax_grad_norm: 0\n"
    )
    rep = run(tmp_path)
    assert {"CFG001", "CFG002", "CFG003", "CFG004", "CFG007"} <= rules_of(rep)
    (warmup,) = [f for f in rep.findings if f.rule == "CFG002"]
    assert warmup.message.startswith("no warmup (warmup_steps=0) at learning_rate 0.05"), warmup.message
    (tmp_path / "axolotl.yaml").write_text("base_model: x\nadapter: qlora\nload_in_8bit: true\nlearning_rate: 2e-4\n")
    assert "CFG006" in rules_of(run(tmp_path))
    (tmp_path / "axolotl.yaml").unlink()
    (tmp_path / "lf.yaml").write_text(
        "model_name_or_path: x\nstage: sft\nfinetuning_type: lora\nquantization_bit: 4\n"
        "learning_rate: 1.0e-4\nwarmup_ratio: 0.1\nbf16: true\ncompute_dtype: fp16\n"
    )
    assert "CFG005" in rules_of(run(tmp_path))


def test_cfg_manifest_recipe_and_pickle(tmp_path):
    (tmp_path / "rollout.toml").write_text(
        '[rollout]\nname = "q"\nmethod = "qlora"\n[recipe]\nlearning_rate = 2e-4\nwarmup_ratio = 0.03\n'
        '[recipe.quantization]\nload_in_4bit = true\nbnb_4bit_quant_type = "nf4"\nbnb_4bit_compute_dtype = "float16"\n'
    )
    (tmp_path / "training_args.bin").write_bytes(b"\x80\x04not loaded")
    rep = run(tmp_path)
    assert "CFG003" in rules_of(rep)
    assert any(f.rule == "DOC004" and "training_args.bin" in f.message for f in rep.findings)


def test_clean_config_is_clean(tmp_path):
    (tmp_path / "training_args.json").write_text(
        json.dumps(
            {
                "learning_rate": 2e-4,
                "warmup_ratio": 0.03,
                "max_grad_norm": 0.3,
                "bf16": True,
                "lr_scheduler_type": "cosine",
            }
        )
    )
    assert not {r for r in rules_of(run(tmp_path)) if r.startswith("CFG")}


def test_demo_world_runs():
    from tests.conftest import ROLLOUTS

    if not (ROLLOUTS / "diverged" / "train").is_dir():
        pytest.skip("demo world not built")
    assert not {r for r in rules_of(run(ROLLOUTS / "healthy" / "train")) if r.startswith("TRN")}
    got = rules_of(run(ROLLOUTS / "diverged" / "train"))
    assert {"TRN001", "TRN003", "TRN004", "TRN007"} <= got


def test_cfg001_on_hf_args_judges_the_method_the_manifest_names():
    """training_args.json says nothing about 4-bit; rollout.toml says qlora: CFG001 must judge QLoRA, as TRN007
    on the same run's log does (it said "LoRA SFT" beside TRN007's "QLoRA SFT")."""
    from doctor.core.settings import Settings
    from doctor.engine import check
    from tests.conftest import ROLLOUTS

    if not (ROLLOUTS / "qlora-unstable").is_dir():
        pytest.skip("demo world not built")
    rep = check([ROLLOUTS / "qlora-unstable"], Settings())
    by_rule = {f.rule: f for f in rep.findings}
    assert "for QLoRA SFT" in by_rule["CFG001"].message and "for QLoRA SFT" in by_rule["TRN007"].message
    assert by_rule["CFG001"].path.name == "training_args.json"
