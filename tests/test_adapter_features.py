"""Per-feature facts and which checks apply, on adapters written by peft over one tiny Llama base:
DoRA magnitudes, rsLoRA scale, bias training, AdaLoRA rank masks, IA3 / LoHa / LoKr, an unknown base type."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from doctor.core.settings import Settings
from doctor.engine import scan
from probes.adapter import PROBES
from tests.adapter_families import build_model


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    import torch
    from peft import AdaLoraConfig, IA3Config, LoHaConfig, LoKrConfig, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("features")
    base_dir = root / "base"
    build_model("llama").save_pretrained(base_dir)
    w: dict[str, Any] = {"root": root, "base": base_dir}
    configs = {
        "dora": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True),
        "rslora": LoraConfig(r=16, lora_alpha=8, target_modules=["q_proj"], use_rslora=True),
        "bias": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], lora_bias=True),
        "ia3": IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]),
        "loha": LoHaConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]),
        "lokr": LoKrConfig(r=4, alpha=8, target_modules=["q_proj"]),
    }
    for name, cfg in configs.items():
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = get_peft_model(model, cfg)
        with torch.no_grad():  # a trained-looking adapter: nothing stays at its zero init
            for n, p in pm.named_parameters():
                if p.requires_grad and ("lora_B" in n or "hada_w2_a" in n or "lokr_w2" in n):
                    p.normal_(0, 0.02)
        pm.save_pretrained(root / name)
        w[name] = root / name
    # AdaLoRA: a few real steps so the budget allocator writes its rank masks into the config
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = AdaLoraConfig(init_r=6, target_r=2, target_modules=["q_proj", "v_proj"], total_step=6, tinit=1, tfinal=2,
                        deltaT=1, lora_alpha=12)  # fmt: skip
    pm = get_peft_model(model, cfg)
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    torch.manual_seed(0)
    for step in range(6):
        ids = torch.randint(0, 96, (2, 8))
        pm(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        pm.base_model.update_and_allocate(step)
        opt.zero_grad()
    pm.save_pretrained(root / "adalora")
    w["adalora"] = root / "adalora"
    return w


def run(path: Path):
    # The adapters name their base by absolute path outside the scanned folder: allowed here (probes/common/paths.py
    # does not follow such paths by default).
    report = scan([path], Settings(sections={"paths": {"allow_outside": True}}), probes=PROBES)
    serious = [f for f in report.findings if f.severity.value in ("error", "warning")]
    return report, serious, report.artifacts[0].facts


def test_dora_magnitudes_counted_and_checked_against_the_base(world) -> None:
    _, bad, f = run(world["dora"])
    assert not bad, [(x.rule, x.message) for x in bad]
    assert f["use_dora"] and f["dora_magnitudes"] == 4 and f["summary"].startswith("LORA+DoRA r=4")
    # a magnitude vector of another width than the base module's outputs is an error naming it
    from safetensors.numpy import load_file, save_file

    bad_dir = world["root"] / "dora-bad"
    shutil.copytree(world["dora"], bad_dir, dirs_exist_ok=True)
    sd = load_file(str(bad_dir / "adapter_model.safetensors"))
    key = "base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector"
    sd[key] = sd[key][:-2].copy()
    save_file(sd, str(bad_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    _, bad, _ = run(bad_dir)
    assert any(x.rule == "ADP012" and key in x.message and "30 entries" in x.message for x in bad), bad


def test_rslora_scale_is_alpha_over_sqrt_r(world) -> None:
    _, bad, f = run(world["rslora"])
    assert not bad and f["use_rslora"] and f["scale"] == pytest.approx(8 / math.sqrt(16)) == 2.0


def test_lora_bias_facts(world) -> None:
    _, bad, f = run(world["bias"])
    assert not bad, [(x.rule, x.message) for x in bad]
    assert f["lora_bias"] is True and f["lora_bias_tensors"] == 2 and f["bias_tensors"] == 0


def test_adalora_rank_masks(world) -> None:
    _, bad, f = run(world["adalora"])
    cfg = json.loads((world["adalora"] / "adapter_config.json").read_text())
    masks = cfg["rank_pattern"]
    assert masks and all(isinstance(v, list) for v in masks.values())  # what peft wrote
    assert not bad, [(x.rule, x.message) for x in bad]
    kept = {k.removesuffix(".lora_E"): sum(v) for k, v in masks.items()}
    assert f["adalora"]["init_r"] == 6 and f["adalora"]["rank_masks"] == len(kept) == 4
    assert f["adalora"]["kept_ranks"] == sorted(set(kept.values()))
    rows = {r["path"]: r["r"] for r in f["layers"]}
    assert rows == kept  # the saved factors were cut to each module's mask
    assert f["adalora"]["pruned_modules"] == sum(1 for v in kept.values() if v == 0)
    assert "ADP010" in f["checks"]["not_applicable"] and "ADP004" in f["checks"]["applied"]
    # a mask that does not fit the saved factors is ADP004
    cfg["rank_pattern"] = {k: [True] * 6 for k in masks}
    (world["adalora"] / "adapter_config.json").write_text(json.dumps(cfg))
    try:
        _, bad, _ = run(world["adalora"])
        assert any(x.rule == "ADP004" and "the AdaLoRA rank mask (rank_pattern) = 6" in x.message for x in bad), bad
    finally:
        cfg["rank_pattern"] = masks
        (world["adalora"] / "adapter_config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("name", ["ia3", "loha", "lokr"])
def test_non_lora_types_say_which_checks_apply(world, name: str) -> None:
    report, bad, f = run(world[name])
    assert not bad, [(x.rule, x.message) for x in bad]
    info = [x for x in report.findings if x.rule == "ADP003"]
    assert len(info) == 1 and info[0].severity.value == "info" and "not applicable" in info[0].message
    assert "shapes vs base" in info[0].message and "ADP012" in f["checks"]["applied"]
    assert "ADP011" in f["checks"]["not_applicable"]
    assert f["base"]["adapted_modules"] > 0


@pytest.mark.parametrize("name", ["ia3", "loha", "lokr"])
def test_non_lora_types_on_a_wider_base_are_errors_naming_the_tensor(world, name: str) -> None:
    ad = world["root"] / f"{name}-wide"
    shutil.copytree(world[name], ad, dirs_exist_ok=True)
    cfg = json.loads((world["base"] / "config.json").read_text())
    cfg["hidden_size"] *= 2
    cfg["intermediate_size"] *= 2  # IA3 on k_proj only sees k_proj's outputs (head_dim is explicit here)
    wide = world["root"] / f"base-wide-{name}"
    wide.mkdir(exist_ok=True)
    (wide / "config.json").write_text(json.dumps(cfg))
    acfg = json.loads((ad / "adapter_config.json").read_text())
    acfg["base_model_name_or_path"] = str(wide)
    (ad / "adapter_config.json").write_text(json.dumps(acfg))
    _, bad, _ = run(ad)
    tag = {"ia3": ".ia3_l", "loha": ".hada_w", "lokr": ".lokr_w"}[name]
    assert any(x.rule == "ADP012" and tag in x.message for x in bad), [(x.rule, x.message) for x in bad]


def test_unknown_base_type_is_info_and_structure_checks_skipped(world) -> None:
    ad = world["root"] / "unknown-base"
    shutil.copytree(world["loha"], ad, dirs_exist_ok=True)
    base = world["root"] / "base-mamba"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 999, "num_hidden_layers": 2}))
    acfg = json.loads((ad / "adapter_config.json").read_text())
    acfg["base_model_name_or_path"] = str(base)
    (ad / "adapter_config.json").write_text(json.dumps(acfg))
    report, bad, f = run(ad)
    assert not bad, [(x.rule, x.message) for x in bad]
    (info,) = [x for x in report.findings if x.rule == "ADP015"]
    assert "'mamba'" in info.message and "not compared" in info.message
    assert "module share not computed" in f["summary"]


def _v4_mixtral_adapter(path: Path, base: Path, *, w2_in: int = 48) -> None:
    """A Mixtral adapter as peft wrote it under transformers v4 (one Linear per expert: w1/w3 [48←32],
    w2 [32←48], r = 8): these keys no longer exist in v5, peft converts them onto the stacked parameters."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    sd = {}
    for i in range(2):
        pre = f"base_model.model.model.layers.{i}"
        sd[f"{pre}.self_attn.q_proj.lora_A.weight"] = rng.normal(size=(8, 32))
        sd[f"{pre}.self_attn.q_proj.lora_B.weight"] = rng.normal(size=(32, 8))
        for j in range(4):
            e = f"{pre}.block_sparse_moe.experts.{j}"
            for w, (din, dout) in {"w1": (32, 48), "w3": (32, 48), "w2": (w2_in, 32)}.items():
                sd[f"{e}.{w}.lora_A.weight"] = rng.normal(size=(8, din))
                sd[f"{e}.{w}.lora_B.weight"] = rng.normal(size=(dout, 8))
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in sd.items()}, str(path / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "w1", "w2", "w3"],
           "base_model_name_or_path": str(base), "task_type": "CAUSAL_LM", "bias": "none"}  # fmt: skip
    (path / "adapter_config.json").write_text(json.dumps(cfg))


def test_transformers_v4_mixtral_adapter_is_resolved_like_peft_loads_it(tmp_path) -> None:
    import torch
    from peft import PeftModel

    base = tmp_path / "mixtral"
    build_model("mixtral").save_pretrained(base)
    ad = tmp_path / "v4-adapter"
    _v4_mixtral_adapter(ad, base)
    # peft itself loads it onto the v5 model: the stacked expert factors receive the per-expert weights
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), ad)
    stacked = [p for n, p in pm.named_parameters() if "experts" in n and "lora_A" in n]
    assert stacked and all(float(torch.count_nonzero(p)) > 0 for p in stacked)
    _, bad, f = run(ad)
    assert not bad, [(x.rule, x.message) for x in bad]
    assert f["base"]["adapted_parameters"] == 4  # gate_up_proj and down_proj in 2 layers
    # one expert's w2 with another input width: an error naming that tensor
    bad_ad = tmp_path / "v4-bad"
    _v4_mixtral_adapter(bad_ad, base, w2_in=40)
    _, bad, _ = run(bad_ad)
    assert any(x.rule == "ADP012" and "block_sparse_moe.experts.0.w2.lora_A.weight" in x.message for x in bad), bad


def test_target_peft_cannot_wrap_is_an_error_before_deploy(world) -> None:
    ad = world["root"] / "container-target"
    shutil.copytree(world["rslora"], ad, dirs_exist_ok=True)
    cfg = json.loads((ad / "adapter_config.json").read_text())
    cfg["target_modules"] = ["q_proj", "mlp"]  # `mlp` is the LlamaMLP container: peft raises at load
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    _, bad, _ = run(ad)
    (f,) = [x for x in bad if x.rule == "ADP013"]
    assert f.severity.value == "error" and "model.layers.0.mlp" in f.message and "not supported" in f.message
