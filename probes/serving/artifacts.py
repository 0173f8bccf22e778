"""What serving checks need to know about an adapter folder and a base model folder.

Headers and configs only: adapter_config.json, the safetensors header, config.json (read with
probes.adapter's validated readers). Weights are never read here; sha256 reads the file, only when asked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from doctor.core.safeio import loads_json
from probes.common.peft.basemodel import base_dims as _adapter_base_dims
from probes.common.peft.basemodel import read_base_config as _read_config
from probes.common.safetensors_io import Unreadable, read_header, sha256_file

__all__ = ["sha256_file"]

WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
_LAYER = re.compile(r"\.layers\.(\d+)\.")
_KNOWN_SUFFIX = re.compile(r"\.(lora_A|lora_B)\.weight$|\.(lora_embedding_A|lora_embedding_B)$")
_SUFFIX = re.compile(
    r"\.(lora_A|lora_B)(?:\.[\w-]+)?\.weight$|\.(lora_embedding_A|lora_embedding_B)(?:\.[\w-]+)?$|"
    r"\.lora_magnitude_vector(?:\.[\w-]+)?(?:\.weight)?$|\.(lora_A|lora_B)(?:\.[\w-]+)?\.bias$"
)


def safetensors_header(path: Path) -> dict[str, Any]:
    """Tensor name → {"dtype", "shape"} from a validated safetensors header (the data is not read)."""
    tensors, _, _ = read_header(path)
    return {k: {"dtype": t.dtype, "shape": list(t.shape)} for k, t in tensors.items()}


def module_of(key: str) -> str:
    """Target module of a PEFT key: the last name segment before .lora_A/.lora_B/…"""
    stem = _SUFFIX.sub("", key)
    return stem.rsplit(".", 1)[-1]


def read_adapter(folder: Path) -> dict[str, Any]:
    """Facts about an adapter folder; `exists` False when there is nothing to load."""
    facts: dict[str, Any] = {"path": str(folder), "exists": folder.is_dir()}
    if not folder.is_dir():
        return facts
    cfg_path = folder / "adapter_config.json"
    cfg: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            loaded = loads_json(cfg_path.read_text(encoding="utf-8"))
            cfg = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                facts["config_error"] = "adapter_config.json is not an object"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            facts["config_error"] = f"adapter_config.json unreadable: {exc}"
    else:
        facts["config_error"] = "no adapter_config.json"
    facts["has_config"] = cfg_path.is_file()
    facts["config"] = cfg
    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    facts["weights"] = weights.name if weights else None
    facts["other_weights"] = sorted(p.name for p in folder.glob("*.safetensors") if p.name not in WEIGHT_NAMES)[:10]
    tensors: dict[str, Any] = {}
    if weights is not None and weights.suffix == ".safetensors":
        try:
            tensors = safetensors_header(weights)
        except Unreadable as exc:
            facts["header_error"] = str(exc)
    facts["tensors"] = {k: list(v.get("shape", [])) for k, v in tensors.items()}
    _derive(facts, cfg)
    return facts


def _derive(facts: dict[str, Any], cfg: dict[str, Any]) -> None:
    tensors: dict[str, list[int]] = facts["tensors"]
    r = cfg.get("r")
    ranks = [r] if isinstance(r, int) and not isinstance(r, bool) else []
    rp = cfg.get("rank_pattern") or {}
    if isinstance(rp, dict):
        ranks += [v for v in rp.values() if isinstance(v, int)]
    a_ranks = [s[0] for k, s in tensors.items() if (".lora_A." in k or "lora_embedding_A" in k) and s]
    facts["r"] = r
    facts["config_max_rank"] = max(ranks) if ranks else None
    facts["tensor_max_rank"] = max(a_ranks) if a_ranks else None
    facts["max_rank"] = max(ranks + a_ranks) if ranks + a_ranks else None
    facts["lora_alpha"] = cfg.get("lora_alpha")
    facts["use_rslora"] = bool(cfg.get("use_rslora"))
    facts["rank_pattern"] = bool(cfg.get("rank_pattern")) or bool(cfg.get("alpha_pattern"))
    facts["use_dora"] = bool(cfg.get("use_dora")) or any("lora_magnitude_vector" in k for k in tensors)
    facts["bias"] = cfg.get("bias", "none")
    facts["lora_bias"] = bool(cfg.get("lora_bias")) or any(k.endswith(".bias") and ".lora_" in k for k in tensors)
    facts["modules_to_save"] = cfg.get("modules_to_save")
    facts["init_lora_weights"] = cfg.get("init_lora_weights", True)
    facts["peft_type"] = cfg.get("peft_type")
    facts["target_modules"] = cfg.get("target_modules")
    facts["base_model_name_or_path"] = cfg.get("base_model_name_or_path")
    facts["unknown_keys"] = sorted(k for k in tensors if not _KNOWN_SUFFIX.search(k))[:20]
    facts["modules"] = sorted({module_of(k) for k in tensors})
    layers = [int(m.group(1)) for k in tensors if (m := _LAYER.search(k))]
    facts["max_layer"] = max(layers) if layers else None


def adapter_facts(folder: Path) -> dict[str, Any]:
    """Header + config facts. probes.adapter's adapter_facts() is not called here: it scans the weights
    (Gram matrices, sha256), which the engine-compatibility rules and a 1,000-adapter registry check do
    not need; its facts stay on the adapter artifacts for the ADP rules."""
    return read_adapter(folder)


def read_base_config(folder: Path) -> dict[str, Any] | None:
    return _read_config(folder / "config.json" if folder.is_dir() else folder)


def base_dims(cfg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Llama-style (in, out) of each LoRA-targetable module; empty for architectures doctor cannot size."""
    return _adapter_base_dims(cfg)["modules"]


def dim_mismatches(facts: dict[str, Any], base_cfg: dict[str, Any]) -> list[str]:
    """Tensors whose in/out dims do not fit the base model (lora_A [r, in], lora_B [out, r])."""
    dims = base_dims(base_cfg)
    bad: list[str] = []
    if not dims:
        return bad
    for key, shape in facts.get("tensors", {}).items():
        if len(shape) != 2:
            continue
        mod = module_of(key)
        if mod not in dims or mod == "embed_tokens":
            continue
        din, dout = dims[mod]
        if ".lora_A." in key and shape[1] != din:
            bad.append(f"{key} in-dim {shape[1]} ≠ {din}")
        elif ".lora_B." in key and shape[0] != dout:
            bad.append(f"{key} out-dim {shape[0]} ≠ {dout}")
    layers = base_cfg.get("num_hidden_layers")
    if isinstance(layers, int) and isinstance(facts.get("max_layer"), int) and facts["max_layer"] >= layers:
        bad.append(f"layer index {facts['max_layer']} ≥ num_hidden_layers {layers}")
    return bad


# ------------------------------------------------------------------ a small cache shared by the probes

_CACHE: dict[tuple[str, tuple], dict[str, Any]] = {}
_CACHE_MAX = 8192


def stamp(folder: Path) -> tuple:
    """What invalidates cached facts: size and mtime of the config and the weights."""
    out = []
    for name in ("adapter_config.json", *WEIGHT_NAMES):
        try:
            st = (folder / name).stat()
            out.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def cached_facts(folder: Path) -> dict[str, Any]:
    key = (str(folder.resolve()), stamp(folder))
    hit = _CACHE.get(key)
    if hit is None:
        hit = adapter_facts(folder)
        remember(key[0], key[1], hit)
    return hit


def remember(resolved: str, st: tuple, facts: dict[str, Any]) -> None:
    """Keep facts for a folder (its resolved path as a string) at a given stamp()."""
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[(resolved, st)] = facts
