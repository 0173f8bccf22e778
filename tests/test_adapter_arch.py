"""The declarative architecture table against the models transformers really builds from the same config."""

from __future__ import annotations

import json

import pytest

from probes.common.peft.arch import CONV1D, EMBEDDING, LINEAR, PARAM, architecture_for
from tests.adapter_families import FAMILIES, VLMS, build_model

ALL = [*FAMILIES, *VLMS]


def _real_structure(model) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every Linear / Conv1D / Embedding and every ≥2-D parameter of a non-Linear module, by path."""
    import torch
    from transformers.pytorch_utils import Conv1D

    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, Conv1D):
            out[name] = (CONV1D, tuple(mod.weight.shape))
        elif isinstance(mod, torch.nn.Linear):
            out[name] = (LINEAR, tuple(mod.weight.shape))
        elif isinstance(mod, torch.nn.Embedding):
            out[name] = (EMBEDDING, tuple(mod.weight.shape))
        elif not isinstance(mod, torch.nn.LayerNorm) and "norm" not in type(mod).__name__.lower():
            for pname, p in mod.named_parameters(recurse=False):
                if p.dim() >= 2:
                    out[f"{name}.{pname}"] = (PARAM, tuple(p.shape))
    return out


@pytest.mark.parametrize("family", ALL)
def test_table_matches_transformers(family: str) -> None:
    model = build_model(family, meta=True)
    cfg = json.loads(model.config.to_json_string())  # what save_pretrained writes as config.json
    arch = architecture_for(cfg)
    assert arch is not None, family
    real = _real_structure(model)
    ours = {p: (s.kind, s.shape) for p, s in arch.modules.items() if s.kind in (LINEAR, CONV1D, EMBEDDING, PARAM)}
    if arch.vision:
        real = {p: v for p, v in real.items() if not arch.is_unmodelled(p)}
    assert ours == real
    # all-linear = every Linear/Conv1D except the output embedding, as in peft's _maybe_include_all_linear_layers
    out_emb = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    assert out_emb == arch.head


def test_unknown_model_type_and_missing_dims() -> None:
    assert architecture_for({"model_type": "mamba", "hidden_size": 32}) is None
    assert architecture_for({"model_type": "llama"}) is None
    assert architecture_for([]) is None  # type: ignore[arg-type]


def test_locate_tolerates_other_heads_and_layouts() -> None:
    cfg = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 96}  # fmt: skip
    arch = architecture_for(cfg)
    assert arch is not None
    assert arch.locate("model.layers.1.mlp.down_proj").in_features == 48
    assert arch.locate("layers.1.mlp.down_proj").in_features == 48  # AutoModel (no causal-LM wrapper)
    assert arch.locate("language_model.model.layers.0.self_attn.k_proj").out_features == 16  # v4 VLM layout
    assert arch.locate("model.layers.2.mlp.down_proj") is None  # beyond num_hidden_layers
    assert arch.locate("transformer.h.0.attn.c_attn") is None
