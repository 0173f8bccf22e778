"""Tiny configs per architecture family (transformers config classes), shared by the adapter tests.

Dimensions are deliberately all different (hidden 32, intermediate 48, 4 heads, 2 KV heads, head_dim
16 where a family takes it, vocab 96, 2 layers) so a table entry that picks the wrong one is caught.
"""

from __future__ import annotations

from typing import Any

COMMON = dict(
    hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vocab_size=96, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
)  # fmt: skip
MOE = dict(num_experts_per_tok=2, moe_intermediate_size=24)

# family → (config class name, extra kwargs, short names of its attention + MLP Linear modules)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {"head_dim": 16}),
    "mistral": ("MistralConfig", {"head_dim": 16}),
    "mixtral": ("MixtralConfig", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2": ("Qwen2Config", {}),
    "qwen2_moe": ("Qwen2MoeConfig", {**MOE, "num_experts": 4, "shared_expert_intermediate_size": 40,
                                     "decoder_sparse_step": 1, "mlp_only_layers": [0]}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "qwen3_moe": ("Qwen3MoeConfig", {**MOE, "num_experts": 4, "head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 16}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 16}),
    "phi": ("PhiConfig", {}),
    "phi3": ("Phi3Config", {}),
    "gpt2": ("GPT2Config", {"n_inner": 48}),
    "gpt_neox": ("GPTNeoXConfig", {}),
    "falcon": ("FalconConfig", {"new_decoder_architecture": True, "num_kv_heads": 2, "ffn_hidden_size": 48}),
    "falcon_mq": ("FalconConfig", {"multi_query": True}),
    "opt": ("OPTConfig", {"ffn_dim": 48, "word_embed_proj_dim": 32}),
}  # fmt: skip

TEXT = dict(
    hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vocab_size=300, head_dim=16,
)  # fmt: skip
VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
              patch_size=16)  # fmt: skip
VLMS: dict[str, tuple[str, dict[str, Any]]] = {
    "llava": ("LlavaConfig", {"text_config": {"model_type": "llama", **TEXT},
                              "vision_config": {"model_type": "clip_vision_model", **VISION},
                              "image_token_index": 290}),
    "gemma3": ("Gemma3Config", {"text_config": TEXT, "vision_config": VISION, "mm_tokens_per_image": 4,
                                "image_token_index": 290, "boi_token_index": 291, "eoi_token_index": 292}),
}  # fmt: skip

# family → (explicit short names, a regex string)
NAMES: dict[str, tuple[list[str], str]] = {
    "llama": (["q_proj", "v_proj", "down_proj"], r".*\.(q_proj|o_proj|up_proj)"),
    "mistral": (["k_proj", "o_proj"], r".*self_attn\.[qv]_proj"),
    "mixtral": (["q_proj", "v_proj"], r".*\.(k_proj|o_proj)"),
    "qwen2": (["q_proj", "gate_proj"], r".*layers\.1\..*_proj"),
    "qwen2_moe": (["q_proj", "shared_expert_gate"], r".*shared_expert\.\w+_proj"),
    "qwen3": (["v_proj", "up_proj"], r"model\.layers\.0\.mlp\..*_proj"),
    "qwen3_moe": (["o_proj"], r".*\.[qkv]_proj"),
    "gemma": (["q_proj", "down_proj"], r".*mlp\.(gate|up)_proj"),
    "gemma2": (["o_proj", "up_proj"], r".*\.[kv]_proj"),
    "gemma3_text": (["q_proj", "k_proj"], r".*layers\.0\.self_attn\.[a-z]+_proj"),
    "phi": (["q_proj", "dense", "fc1"], r".*\.fc[12]"),
    "phi3": (["qkv_proj", "gate_up_proj"], r".*\.(o|down)_proj"),
    "gpt2": (["c_attn", "c_fc"], r".*\.h\.\d+\.attn\.c_proj"),
    "gpt_neox": (["query_key_value", "dense_4h_to_h"], r".*attention\..*"),
    "falcon": (["query_key_value", "dense"], r".*mlp\.dense.*"),
    "falcon_mq": (["query_key_value"], r".*dense_h_to_4h"),
    "opt": (["q_proj", "v_proj", "fc2"], r".*decoder\.layers\.\d+\.(fc1|self_attn\.out_proj)"),
    "llava": (["q_proj", "v_proj"], r".*language_model.*\.(gate|down)_proj"),
    "gemma3": (["o_proj"], r"model\.language_model.*\.mlp\.\w+_proj"),
}
MOE_PARAMS = {
    "mixtral": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
    "qwen2_moe": ["experts.down_proj", "gate_up_proj"],
    "qwen3_moe": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj", "mlp.gate.weight"],
}


def make_config(family: str) -> Any:
    import transformers

    if family in VLMS:
        cls, kw = VLMS[family]
        return getattr(transformers, cls)(**kw)
    cls, extra = FAMILIES[family]
    kw = {**COMMON, **extra}
    if cls == "GPT2Config":
        kw = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 96, "n_positions": 64, **extra}
    return getattr(transformers, cls)(**kw)


def build_model(family: str, meta: bool = False) -> Any:
    import torch
    import transformers

    cfg = make_config(family)
    auto = transformers.AutoModelForImageTextToText if family in VLMS else transformers.AutoModelForCausalLM
    if meta:
        with torch.device("meta"):
            return auto.from_config(cfg)
    torch.manual_seed(0)
    return auto.from_config(cfg)
