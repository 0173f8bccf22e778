"""The base model an adapter is meant for: where to find its config.json and what shapes it implies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.manifest import resolve
from doctor.core.safeio import loads_json, read_text_capped
from probes.common.peft.arch import ADAPTABLE, architecture_for

# Model types whose decoder blocks use the Llama module names and shapes.
LLAMA_LIKE = {
    "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2", "granite",
    "cohere", "starcoder2_llama", "internlm2_llama", "deepseek_v2_lite_llama", "smollm3", "ministral",
}  # fmt: skip
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """config.json with a VLM's text_config lifted to the top (the text tower's numbers)."""
    tc = cfg.get("text_config")
    if "hidden_size" not in cfg and isinstance(tc, dict):
        return {**tc, "architectures": cfg.get("architectures")}
    return cfg


def read_config_json(path: Path) -> dict[str, Any] | None:
    """config.json as written (a VLM keeps its text_config nested); None when unreadable."""
    try:
        cfg = loads_json(read_text_capped(path, 4_000_000))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def read_base_config(path: Path) -> dict[str, Any] | None:
    """config.json with a VLM's text_config lifted to the top (the text tower's numbers)."""
    cfg = read_config_json(path)
    return text_config(cfg) if cfg is not None else None


def find_base_config(adapter_dir: Path, rollout: Any, name_or_path: str | None) -> tuple[Path | None, str]:
    """config.json of the base: a base_model artifact in the rollout, the manifest's base_model, or a
    local base_model_name_or_path. Returns (path or None, how it was found)."""
    manifest_base = None
    rollout_tbl = (rollout.manifest or {}).get("rollout", {}) if rollout is not None else {}
    if isinstance(rollout_tbl, dict) and isinstance(rollout_tbl.get("base_model"), str):
        manifest_base = resolve(rollout.root, rollout_tbl["base_model"])
    bases = [a.path for a in rollout.of_kind("base_model")] if rollout is not None else []
    if manifest_base is not None:
        for b in bases:
            if _same(b, manifest_base):
                bases = [b]
                break
    for b in bases[:1]:
        cfg = b / "config.json" if b.is_dir() else b
        if cfg.is_file():
            return cfg, f"base_model artifact {b.name}"
    if manifest_base is not None:
        cfg = manifest_base / "config.json" if manifest_base.is_dir() else manifest_base
        if cfg.is_file():
            return cfg, "rollout.toml base_model"
    if name_or_path:
        p = Path(name_or_path)
        for cand in [p] if p.is_absolute() else [adapter_dir / p]:
            try:
                if (cand / "config.json").is_file():
                    return cand / "config.json", "adapter base_model_name_or_path"
            except OSError:
                pass
    return None, ""


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def base_dims(cfg: dict[str, Any]) -> dict[str, Any]:
    """Normalized numbers: model_type, architecture, hidden, intermediate, heads, kv_heads, head_dim,
    layers, vocab, and `modules` {short name: (in, out)} for the architectures in probes/common/peft/arch.py
    (the first layer's modules; MoE expert parameters are left out, see `architecture_for` for those)."""

    def num(*keys: str) -> int | None:
        for k in keys:
            v = cfg.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None

    hidden = num("hidden_size", "n_embd", "d_model")
    heads = num("num_attention_heads", "n_head")
    kv = num("num_key_value_heads") or heads
    head_dim = num("head_dim") or (hidden // heads if hidden and heads else None)
    inter = num("intermediate_size", "n_inner", "ffn_dim")
    archs = cfg.get("architectures") or []
    out: dict[str, Any] = {
        "model_type": cfg.get("model_type"),
        "architecture": archs[0] if isinstance(archs, list) and archs else None,
        "hidden": hidden,
        "intermediate": inter,
        "heads": heads,
        "kv_heads": kv,
        "head_dim": head_dim,
        "layers": num("num_hidden_layers", "n_layer", "num_layers"),
        "vocab": num("vocab_size"),
        "modules": {},
    }
    arch = architecture_for(cfg)
    if arch is not None:
        for spec in arch.modules.values():
            if spec.kind in ADAPTABLE and (spec.layer in (None, 0) or spec.name not in out["modules"]):
                out["modules"].setdefault(spec.name, (spec.in_features, spec.out_features))
    elif out["model_type"] in LLAMA_LIKE and hidden and heads and head_dim and inter:
        out["modules"] = {
            "q_proj": (hidden, heads * head_dim),
            "k_proj": (hidden, kv * head_dim),
            "v_proj": (hidden, kv * head_dim),
            "o_proj": (heads * head_dim, hidden),
            "gate_proj": (hidden, inter),
            "up_proj": (hidden, inter),
            "down_proj": (inter, hidden),
        }
        if out["vocab"]:
            out["modules"]["lm_head"] = (hidden, out["vocab"])
            out["modules"]["embed_tokens"] = (out["vocab"], hidden)
    return out
