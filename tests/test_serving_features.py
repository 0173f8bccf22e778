"""The engine-feature table against adapters made by peft itself (tiny random models, CPU, seconds).

Each feature row is served by an engine version that lacks it and gets its rule, saying whether the engine
refuses the adapter or loads it and serves different outputs; a version that has it stays clean.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.engine import check

pytestmark = pytest.mark.slow  # imports transformers + peft and saves ~15 small adapters

H, INTER, L, V = 32, 64, 2, 64


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """adapters/<case> and bases/{llama,mixtral}, all written by transformers + peft."""
    import torch
    from peft import AdaLoraConfig, IA3Config, LoHaConfig, LoKrConfig, LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    out = tmp_path_factory.mktemp("peft-made")
    small = dict(hidden_size=H, intermediate_size=INTER, num_attention_heads=2, num_key_value_heads=2, head_dim=16)
    llama = LlamaConfig(num_hidden_layers=L, vocab_size=V, **small)
    mixtral = MixtralConfig(num_hidden_layers=1, vocab_size=V, num_local_experts=2, num_experts_per_tok=1, **small)
    torch.manual_seed(0)
    LlamaForCausalLM(llama).save_pretrained(out / "bases" / "llama")
    MixtralForCausalLM(mixtral).save_pretrained(out / "bases" / "mixtral")
    qv = ["q_proj", "v_proj"]
    cases = {
        "clean": LoraConfig(r=4, lora_alpha=8, target_modules=qv),
        "rslora": LoraConfig(r=16, lora_alpha=16, target_modules=qv, use_rslora=True),
        "patterns": LoraConfig(r=4, lora_alpha=8, target_modules=qv, rank_pattern={"v_proj": 2}),
        "ia3": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
        "loha": LoHaConfig(r=4, target_modules=qv),
        "lokr": LoKrConfig(r=4, target_modules=qv),
        "adalora": AdaLoraConfig(init_r=4, target_modules=qv, total_step=10),
        "regex": LoraConfig(r=4, lora_alpha=8, target_modules=r".*\.(q|v)_proj"),
        "layers": LoraConfig(r=4, lora_alpha=8, target_modules=qv, layers_to_transform=[1]),
        "dora": LoraConfig(r=4, lora_alpha=8, target_modules=qv, use_dora=True),
        "bias": LoraConfig(r=4, lora_alpha=8, target_modules=qv, bias="lora_only"),
        "lm_head": LoraConfig(r=4, lora_alpha=8, target_modules=qv, modules_to_save=["lm_head"]),
        "moe": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], target_parameters=["experts.down_proj"]),
    }

    def trained(pm):  # PEFT starts lora_B at zero; a trained adapter's is not
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.normal_(std=0.02)
        return pm

    for name, cfg in cases.items():
        model = (MixtralForCausalLM(mixtral) if name == "moe" else LlamaForCausalLM(llama)).eval()
        trained(get_peft_model(model, cfg)).save_pretrained(out / "adapters" / name)
    # as PEFT initialises it: every lora_B exactly zero
    get_peft_model(LlamaForCausalLM(llama), cases["clean"]).save_pretrained(out / "adapters" / "zero")
    # the clean adapter's tensors renamed under a multimodal wrapper's prefix
    from safetensors.numpy import load_file, save_file

    shutil.copytree(out / "adapters" / "clean", out / "adapters" / "prefixed")
    f = out / "adapters" / "prefixed" / "adapter_model.safetensors"
    tensors = load_file(str(f))
    save_file({k.replace(".model.layers.", ".model.language_model.layers."): v for k, v in tensors.items()}, str(f))
    # resized vocabulary: two added tokens, embeddings saved in full
    model = LlamaForCausalLM(llama)
    model.resize_token_embeddings(V + 2)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=qv, modules_to_save=["embed_tokens", "lm_head"])
    trained(get_peft_model(model, cfg)).save_pretrained(out / "adapters" / "resized")
    return out


def serve(tmp: Path, made: Path, case: str, launch: str, base: str = "llama"):
    """A rollout folder: the peft-made base and adapter plus one launch script; the report on it."""
    root = tmp / case
    shutil.copytree(made / "bases" / base, root / "models" / "base")
    shutil.copytree(made / "adapters" / case, root / "adapter")
    (root / "serve.sh").write_text(launch.format(adapter="./adapter") + "\n")
    return check([root], Settings())


def vllm(version: str) -> str:
    return (
        f"pip install vllm=={version}\n"
        "vllm serve models/base --served-model-name tiny --enable-lora --max-lora-rank 64 "
        "--lora-modules bot={adapter}"
    )


SGLANG = (
    "docker run lmsysorg/sglang:v0.5.8 python3 -m sglang.launch_server "
    "--model-path models/base --lora-paths bot={adapter}"
)
TGI = (
    "docker run ghcr.io/huggingface/text-generation-inference:2.4.0 "
    "--model-id models/base --lora-adapters bot={adapter}"
)


def srv(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        if f.rule.startswith("SRV") and f.severity.value in ("error", "warning"):
            out.setdefault(f.rule, []).append(f)
    return out


def test_clean_adapter_stays_clean_on_every_engine(tmp_path, made):
    for i, launch in enumerate((vllm("0.5.0"), vllm("0.14.0"), SGLANG, TGI)):
        assert srv(serve(tmp_path / str(i), made, "clean", launch)) == {}, launch


def test_rslora_ignored_by_old_vllm_is_off_by_sqrt_r(tmp_path, made):
    got = srv(serve(tmp_path, made, "rslora", vllm("0.5.0")))
    (f,) = got["SRV027"]
    assert "vllm 0.5.0 loads it and serves different outputs" in f.message
    assert f.evidence["outcome"] == "different" and f.evidence["factor"] == pytest.approx(math.sqrt(16))
    assert "4× (√r) too small" in f.message
    assert srv(serve(tmp_path / "new", made, "rslora", vllm("0.6.3"))) == {}


def test_rank_pattern_scale_ignored(tmp_path, made):
    got = srv(serve(tmp_path, made, "patterns", vllm("0.6.3")))
    (f,) = got["SRV024"]
    assert "loads it and serves different outputs" in f.message
    # v_proj has r=2: PEFT scales it by 8/2 = 4, the engine by 8/4 = 2
    assert f.evidence["count"] == L and set(f.evidence["modules"].values()) == {2.0}


@pytest.mark.parametrize("case", ["ia3", "loha", "lokr", "adalora"])
def test_non_lora_types_are_refused(tmp_path, made, case):
    got = srv(serve(tmp_path, made, case, vllm("0.6.3")))
    assert set(got) == {"SRV028"}, {k: [f.message for f in v] for k, v in got.items()}
    assert "vllm 0.6.3 refuses to load it" in got["SRV028"][0].message
    assert got["SRV028"][0].evidence["peft_type"] == case.upper()


@pytest.mark.parametrize(
    ("version", "outcome"), [("0.10.0", "refuses to load it"), ("0.12.0", "serves different outputs"), ("0.14.0", None)]
)
def test_moe_expert_lora_by_vllm_version(tmp_path, made, version, outcome):
    got = srv(serve(tmp_path, made, "moe", vllm(version), base="mixtral"))
    if outcome is None:
        assert "SRV029" not in got
    else:
        (f,) = got["SRV029"]
        assert outcome in f.message and f.evidence["target_parameters"] == ["experts.down_proj"]


def test_regex_target_modules_refused_by_sglang_only(tmp_path, made):
    got = srv(serve(tmp_path, made, "regex", SGLANG))
    (f,) = got["SRV030"]
    assert "sglang 0.5.8 refuses to load it" in f.message and r".*\.(q|v)_proj" in f.message
    assert srv(serve(tmp_path / "v", made, "regex", vllm("0.6.3"))) == {}


def test_layers_to_transform_is_served_everywhere(tmp_path, made):
    cfg = json.loads((made / "adapters" / "layers" / "adapter_config.json").read_text())
    assert cfg["layers_to_transform"] == [1]
    for i, launch in enumerate((vllm("0.5.0"), SGLANG, TGI)):
        assert srv(serve(tmp_path / str(i), made, "layers", launch)) == {}


def test_dora_bias_and_modules_to_save_rows(tmp_path, made):
    assert "vllm 0.6.3 refuses it" in srv(serve(tmp_path / "d", made, "dora", vllm("0.6.3")))["SRV008"][0].message
    assert "silently" in srv(serve(tmp_path / "t", made, "dora", TGI))["SRV008"][0].message
    assert "SRV009" in srv(serve(tmp_path / "b", made, "bias", vllm("0.6.3")))
    assert "lm_head" in srv(serve(tmp_path / "m", made, "lm_head", vllm("0.6.3")))["SRV010"][0].message


def test_resized_vocabulary_row(tmp_path, made):
    got = srv(serve(tmp_path, made, "resized", vllm("0.6.3")))
    assert "SRV010" in got  # full embedding matrices are not LoRA weights to vLLM
    assert f"≠ base vocab_size {V}" in got["SRV012"][0].message


# ------------------------------------------------------------------ silent no-op adapters


def test_renamed_prefix_adapter_is_a_silent_noop_error(tmp_path, made):
    got = srv(serve(tmp_path, made, "prefixed", vllm("0.14.0")))
    (f,) = got["SRV032"]
    assert f.severity.value == "error" and "would be served as the base model" in f.message
    assert "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight" in f.message
    assert "expected 'model.layers.0.self_attn.q_proj'" in f.message
    assert "prefix 'model.language_model.' where the base has 'model.'" in f.message
    assert f.evidence["expected"]["model.language_model.layers.0.self_attn.q_proj"] == "model.layers.0.self_attn.q_proj"
    assert f.evidence["missing"] == f.evidence["modules"] == 2 * L


def test_all_zero_b_is_served_as_base(tmp_path, made):
    got = srv(serve(tmp_path, made, "zero", vllm("0.14.0")))
    (f,) = got["SRV033"]
    assert f"all {2 * L} lora_B tensors are exactly zero" in f.message
    assert f.evidence["tensors"][0].endswith("lora_B.weight")


@pytest.mark.parametrize(
    ("targets", "outcome"),
    [("qkv_proj", None), ("q_proj", "different"), ("o_proj down_proj", "base_model")],
)
def test_lora_target_modules_the_engine_applies(tmp_path, made, targets, outcome):
    launch = vllm("0.14.0") + f" --lora-target-modules {targets}"
    got = srv(serve(tmp_path, made, "clean", launch))
    if outcome is None:
        assert got == {}
    else:
        (f,) = got["SRV031"]
        assert f.evidence["outcome"] == outcome
        assert ("served as the base model" in f.message) == (outcome == "base_model")
