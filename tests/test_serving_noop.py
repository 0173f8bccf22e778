"""Silent no-op checks that need no model stack: numpy-written adapters against a config-only base."""

from __future__ import annotations

import json

import numpy as np
from safetensors.numpy import load_file, save_file

from tests.test_serving_configs import HEADS, HIDDEN, INTER, LAYERS, VOCAB, run, write_adapter

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": HIDDEN,
    "intermediate_size": INTER,
    "num_attention_heads": HEADS,
    "num_key_value_heads": HEADS,
    "num_hidden_layers": LAYERS,
    "vocab_size": VOCAB,
}
SHELL = "vllm serve models/base --enable-lora --lora-modules bot=./adapter\n"


def rollout(tmp_path, rename=None, zero=False):
    root = tmp_path / "r"
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "base" / "config.json").write_text(json.dumps(LLAMA))  # config only: no weights
    write_adapter(root / "adapter")
    f = root / "adapter" / "adapter_model.safetensors"
    t = load_file(str(f))
    if rename:
        t = {k.replace(*rename): v for k, v in t.items()}
    if zero:
        t = {k: np.zeros_like(v) if "lora_B" in k else v for k, v in t.items()}
    save_file(t, str(f))
    (root / "serve.sh").write_text(SHELL)
    return run(root)


def test_prefix_checked_against_the_architecture_table_when_the_base_has_no_weights(tmp_path):
    report = rollout(tmp_path, rename=(".model.layers.", ".model.model.layers."))
    (f,) = [f for f in report.findings if f.rule == "SRV032"]
    assert f.evidence["base_names_from"] == "architecture table"
    assert "would be served as the base model" in f.message
    assert "expected 'model.layers.0.self_attn.q_proj'" in f.message
    assert f.evidence["missing"] == f.evidence["modules"] == 2 * LAYERS


def test_clean_names_and_zero_b(tmp_path):
    assert not [f for f in rollout(tmp_path / "a").findings if f.rule in ("SRV032", "SRV033")]
    (f,) = [f for f in rollout(tmp_path / "b", zero=True).findings if f.rule == "SRV033"]
    assert f"all {2 * LAYERS} lora_B tensors are exactly zero" in f.message
