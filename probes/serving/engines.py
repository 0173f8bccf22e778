"""What each serving engine accepts, by version (from /work/shared/reference/serving.md).

The version comes from an image tag (`vllm/vllm-openai:v0.6.3`), a `pip install vllm==X` in a script, or,
in a `vllm serve --config` YAML, a `vllm==X` pin in a comment. An unpinned vLLM is checked as the newest
release described here (LATEST_VLLM) and says so.
"""

from __future__ import annotations

import re

from probes.common.peft import basemodel as adapter_base

LATEST_VLLM = (0, 33)

# --max-lora-rank values each release line accepts.
_CAPS = (
    ((0, 0), frozenset({8, 16, 32, 64})),
    ((0, 5), frozenset({8, 16, 32, 64, 128, 256})),
    ((0, 33), frozenset({1, 8, 16, 32, 64, 128, 256, 320, 512})),
)
# Largest base vocabulary vLLM serves with LoRA enabled.
_VOCAB = (((0, 0), 33024), ((0, 4), 128512), ((0, 33), 258048))

# Architectures with LoRA support in vLLM (not exhaustive); and ones known without it.
VLLM_LORA_ARCHS = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "MixtralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Qwen2MoeForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "PhiForCausalLM",
        "Phi3ForCausalLM",
        "GPTBigCodeForCausalLM",
        "BaichuanForCausalLM",
        "ChatGLMModel",
        "InternLM2ForCausalLM",
        "MiniCPMForCausalLM",
        "Starcoder2ForCausalLM",
        "GraniteForCausalLM",
        "OlmoForCausalLM",
        "Olmo2ForCausalLM",
        "ExaoneForCausalLM",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "JambaForCausalLM",
        "SolarForCausalLM",
        "CohereForCausalLM",
        "Cohere2ForCausalLM",
        "GlmForCausalLM",
        "Glm4ForCausalLM",
        "NemotronForCausalLM",
    }
)
VLLM_NO_LORA_ARCHS = frozenset({"GPT2LMHeadModel", "BloomForCausalLM", "OPTForCausalLM", "FalconForCausalLM"})

# Module names vLLM accepts for Llama-family models (packed q/k/v and gate/up are expanded here).
LLAMA_MODULES = frozenset(adapter_base.LLAMA_MODULES) | {"embed_tokens", "lm_head"}
LLAMA_FAMILY = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
    }
)

# Quantization methods each engine can serve LoRA on top of.
_VLLM_QUANT = frozenset(
    {
        "awq",
        "awq_marlin",
        "gptq",
        "gptq_marlin",
        "marlin",
        "fp8",
        "fbgemm_fp8",
        "compressed-tensors",
        "gguf",
        "modelopt",
        "experts_int8",
        "bitsandbytes",
        "aqlm",
        "quark",
        "moe_wna16",
        "torchao",
        "mxfp4",
    }
)
_TGI_QUANT = frozenset(
    {"awq", "eetq", "exl2", "gptq", "marlin", "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8"}
)
_LORAX_QUANT = frozenset(
    {
        "bitsandbytes",
        "bitsandbytes-nf4",
        "bitsandbytes-fp4",
        "gptq",
        "awq",
        "eetq",
        "hqq-4bit",
        "hqq-3bit",
        "hqq-2bit",
        "fp8",
    }
)

FORBIDDEN_INIT = ("pissa", "olora", "corda", "loftq")


def parse_version(v: str | None) -> tuple[int, ...] | None:
    if not v:
        return None
    m = re.match(r"v?(\d+(?:\.\d+)*)", str(v))
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def _pick(table, version: tuple[int, ...] | None):
    v = version or LATEST_VLLM
    out = table[0][1]
    for since, value in table:
        if v >= since:
            out = value
    return out


def allowed_caps(version: str | None) -> frozenset[int]:
    return _pick(_CAPS, parse_version(version))


def vocab_limit(version: str | None) -> int:
    return _pick(_VOCAB, parse_version(version))


def version_label(engine: str, version: str | None) -> str:
    if version:
        return f"{engine} {version}"
    if engine == "vllm":
        return "vllm (unpinned; checked as {}.{})".format(*LATEST_VLLM)
    return f"{engine} (unpinned)"


def quant_supported(engine: str, version: str | None, method: str) -> bool:
    m = method.lower().replace("_", "-") if engine != "vllm" else method.lower()
    if engine == "vllm":
        if m == "bitsandbytes" and (parse_version(version) or LATEST_VLLM) >= (0, 33):
            return False  # removed from vLLM 0.33's quantization list
        return m in _VLLM_QUANT
    if engine == "tgi":
        return m in _TGI_QUANT
    return m in _LORAX_QUANT


def lora_arch_support(engine: str, arch: str | None) -> bool | None:
    """True/False when known, None when doctor cannot tell."""
    if not arch or engine != "vllm":
        return None
    if arch in VLLM_NO_LORA_ARCHS:
        return False
    return True if arch in VLLM_LORA_ARCHS else None
