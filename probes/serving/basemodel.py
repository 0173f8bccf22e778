"""The base model a server serves, as the serving checks see it: its config.json, and how adapter shapes fit it.

The adapter side is probes.common.adapterinfo (`AdapterInfo`: adapter_config.json + safetensors header),
shared with the registry. Base configs are read with probes.common.peft's validated readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.common.adapterinfo import AdapterInfo, module_of
from probes.common.peft.basemodel import base_dims as _adapter_base_dims
from probes.common.peft.basemodel import read_base_config as _read_config


def read_base_config(folder: Path) -> dict[str, Any] | None:
    return _read_config(folder / "config.json" if folder.is_dir() else folder)


def base_dims(cfg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Llama-style (in, out) of each LoRA-targetable module; empty for architectures doctor cannot size."""
    return _adapter_base_dims(cfg)["modules"]


def dim_mismatches(info: AdapterInfo, base_cfg: dict[str, Any]) -> list[str]:
    """Tensors whose in/out dims do not fit the base model (lora_A [r, in], lora_B [out, r])."""
    dims = base_dims(base_cfg)
    bad: list[str] = []
    if not dims:
        return bad
    for key, shape in info.tensors.items():
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
    if isinstance(layers, int) and isinstance(info.max_layer, int) and info.max_layer >= layers:
        bad.append(f"layer index {info.max_layer} ≥ num_hidden_layers {layers}")
    return bad
