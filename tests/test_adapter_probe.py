"""Adapter probes on real PEFT adapters over a tiny Llama base (made once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from doctor.core.settings import Settings
from doctor.engine import scan
from probes.adapter import PROBES, adapter_facts

REPO = Path(__file__).resolve().parents[1]
DEMO_BASE = REPO / "fixtures" / "models" / "tiny-base"


def _train(model, steps: int = 3) -> None:
    import torch

    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    vocab = model.config.vocab_size
    for _ in range(steps):
        ids = torch.randint(0, vocab, (4, 16))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


def _tiny_llama(path: Path, hidden: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=128, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    if (DEMO_BASE / "config.json").is_file() and any(DEMO_BASE.glob("*.safetensors")):
        base = DEMO_BASE
    else:
        base = _tiny_llama(root / "tiny-base", 64)
    other_base = _tiny_llama(root / "other-base", 32)

    def make(name: str, base_path: Path, train: bool = True, **lora) -> Path:
        model = AutoModelForCausalLM.from_pretrained(base_path)
        pm = get_peft_model(
            model, LoraConfig(**{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], **lora})
        )
        if train:
            _train(pm)
        out = root / name
        pm.save_pretrained(out)
        return out

    w = {"root": root, "base": base, "base_cfg": json.loads((base / "config.json").read_text())}
    w["healthy"] = make("healthy", base)
    w["pattern"] = make("pattern", base, rank_pattern={"v_proj": 4}, alpha_pattern={"v_proj": 8})
    w["other"] = make("other", other_base)
    # A non-default adapter name: PEFT saves it under NAME/.
    model = AutoModelForCausalLM.from_pretrained(base)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]), adapter_name="foo")
    _train(pm, 1)
    pm.save_pretrained(root / "named")
    w["named"] = root / "named"
    return w


def _variant(world, name: str, edit_tensors=None, edit_config=None) -> Path:
    from safetensors.numpy import load_file, save_file

    src = world["healthy"]
    dst = world["root"] / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    if edit_tensors:
        sd = load_file(str(dst / "adapter_model.safetensors"))
        edit_tensors(sd)
        save_file(sd, str(dst / "adapter_model.safetensors"), metadata={"format": "pt"})
    if edit_config:
        cfg = json.loads((dst / "adapter_config.json").read_text())
        edit_config(cfg)
        (dst / "adapter_config.json").write_text(json.dumps(cfg))
    return dst


def _rollout(world, name: str, adapter: Path, base: Path, base_name: str | None = None) -> Path:
    d = world["root"] / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    shutil.copytree(adapter, d / "adapter")
    lines = ["[rollout]", f'name = "{name}"', f'base_model = "{base.resolve().as_posix()}"']
    if base_name:
        lines.append(f'base_model_name = "{base_name}"')
    (d / "rollout.toml").write_text("\n".join(lines) + "\n")
    return d


def run(path: Path):
    # These adapters name their base by absolute path outside the scanned folder: allowed here (the
    # path policy, probes/common/paths.py, does not follow such paths by default; tests/test_path_policy.py).
    report = scan([path], Settings(sections={"paths": {"allow_outside": True}}), probes=PROBES)
    return report, {f.rule: f for f in report.findings}


def serious(report):
    return [f for f in report.findings if f.severity.value in ("error", "warning")]


def test_healthy_adapter_is_clean_and_has_facts(world):
    d = _rollout(world, "healthy-rollout", world["healthy"], world["base"], "peft-doctor/tiny-base")
    report, _ = run(d)
    assert not serious(report), [(f.rule, f.message) for f in report.findings]
    (art,) = [a for a in report.artifacts if a.kind == "adapter"]
    f = art.facts
    assert f["r"] == 8 and f["alpha"] == 16 and f["scale"] == 2.0 and f["max_rank"] == 8
    bc = world["base_cfg"]
    hidden, layers = bc["hidden_size"], bc["num_hidden_layers"]
    kv_out = bc.get("num_key_value_heads", bc["num_attention_heads"]) * bc.get(
        "head_dim", hidden // bc["num_attention_heads"]
    )
    q_out = bc["num_attention_heads"] * bc.get("head_dim", hidden // bc["num_attention_heads"])
    assert f["targets"] == ["q_proj", "v_proj"] and f["lora_modules"] == 2 * layers
    assert f["trainable_params"] == layers * 8 * (hidden + q_out + hidden + kv_out)
    assert f["dtype"] == "F32" and len(f["sha256"]) == 64 and f["size_bytes"] > 0
    assert f["base"]["hidden"] == hidden and f["tensor_dims"]["v_proj"] == {"in": hidden, "out": kv_out}
    rows = f["layers"]
    assert len(rows) == 2 * layers and all(r["update_norm"] > 0 and 1 <= r["effective_rank"] <= 8 for r in rows)
    assert {".lora_A.weight", ".lora_B.weight"} == set(f["key_suffixes"])


def test_nan_found_with_tensor_name(world):
    key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"

    def inject(sd):
        sd[key][3, :2] = np.nan
        sd[key][0, 0] = np.inf

    _, by = run(_variant(world, "nan", inject))
    f = by["ADP006"]
    assert key in f.message and "3 non-finite" in f.message and f.locator == key
    assert f.evidence["tensors"] == {key: 3}


def test_fp16_nan_and_inf_found_and_large_finite_values_are_not(world):
    """fp16 tensors are converted by bit arithmetic that only checks for Inf/NaN when Σx² is huge: a NaN in
    lora_A, an Inf in lora_B are counted exactly; 65504 (the largest finite fp16) is not non-finite."""
    a_key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    b_key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    big_key = "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"

    def inject(sd):
        for k in sd:
            sd[k] = sd[k].astype(np.float16)
        sd[a_key][1, 2] = np.nan
        sd[b_key][0, :3] = [np.inf, -np.inf, np.nan]
        sd[big_key][0, :2] = [65504, -65504]

    _, by = run(_variant(world, "fp16-nan", inject))
    assert by["ADP006"].evidence["tensors"] == {a_key: 1, b_key: 3}


def test_zeroed_lora_b_is_dead(world):
    def zero(sd):
        for k in sd:
            if ".lora_B." in k:
                sd[k][:] = 0

    _, by = run(_variant(world, "dead", zero))
    f = by["ADP007"]
    assert (
        f.severity.value == "error"
        and f"all {2 * world['base_cfg']['num_hidden_layers']} modules" in f.message
        and "dead_adapter" in f.symptoms
    )


def test_rank_pattern_adapter_is_consistent(world):
    report, by = run(world["pattern"])
    assert "ADP004" not in by and not serious(report), [(f.rule, f.message) for f in report.findings]
    facts = report.artifacts[0].facts
    assert facts["rank_pattern"] == {"v_proj": 4} and facts["weight_ranks"] == [4, 8] and facts["max_rank"] == 8


def test_config_r16_over_r8_weights(world):
    _, by = run(_variant(world, "r16", edit_config=lambda c: c.update(r=16)))
    f = by["ADP004"]
    n, hidden = 2 * world["base_cfg"]["num_hidden_layers"], world["base_cfg"]["hidden_size"]
    assert f"{n} of {n} modules" in f.message and "r = 16" in f.message and f"[8, {hidden}]" in f.message


def test_adapter_for_other_hidden_size_is_incompatible(world):
    d = _rollout(world, "other-rollout", world["other"], world["base"])
    _report, by = run(d)
    f = by["ADP012"]
    assert (
        "base_mismatch" in f.symptoms and "32→32" in f.message and f"{world['base_cfg']['hidden_size']}→" in f.message
    )


def test_target_missing_and_alien_names(world):
    def cfg(c):
        c["target_modules"] = ["q_proj", "v_proj", "c_attn"]

    d = _rollout(world, "alien", _variant(world, "alien-adapter", edit_config=cfg), world["base"])
    _, by = run(d)
    assert "'c_attn'" in by["ADP005"].message
    assert "c_attn" in by["ADP013"].message


def test_truncated_file_reported_not_crashed(world):
    d = _variant(world, "truncated")
    f = d / "adapter_model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    report, by = run(d)
    assert "ADP001" in by and "truncated" in by["ADP001"].message
    assert not any(x.rule.startswith("DOC") for x in report.findings)


def test_subfolder_adapter_is_found(world):
    report, _ = run(world["named"])
    arts = [a for a in report.artifacts if a.kind == "adapter"]
    assert [a.path.name for a in arts] == ["foo"]
    assert arts[0].facts["r"] == 4 and arts[0].facts["adapter_name"] == "foo"


def test_adapter_facts_function(world):
    f = adapter_facts(world["healthy"])
    assert f["format"] == "safetensors" and f["tensor_dims"]["q_proj"]["in"] == world["base_cfg"]["hidden_size"]
