"""What serving and the registry need to know about an adapter folder: one typed, light read.

`AdapterInfo` holds adapter_config.json and the safetensors header (names and shapes), plus what is
derived from them. Weights are never read (sha256_file reads the file, only when asked). probes.adapter's
full scan (Gram matrices, sha256) is not used here: the engine-compatibility rules and a 1,000-adapter
registry check do not need it, and its facts stay on the adapter artifacts for the ADP rules.

Names follow probes.adapter's facts: `alpha` is adapter_config.json's `lora_alpha` (the raw key stays in
`config`); `r` is the config's `r` as written (any type; `max_rank` is the checked integer).

```python
info = adapter_info(folder, ctx)          # memoized per scan (ctx.session), keyed by path + file stamps
info = read_adapter_info(folder)          # the read itself (picklable: worker processes call it)
remember(ctx, info_key(folder), info)     # hand the memo an info read elsewhere (a worker)
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.safeio import loads_json
from probes.common.safetensors_io import Unreadable, read_header, sha256_file

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext

__all__ = [
    "WEIGHT_NAMES",
    "AdapterInfo",
    "adapter_info",
    "info_key",
    "module_of",
    "read_adapter_info",
    "remember",
    "sha256_file",
    "stamp",
]

WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_model.pt")
MEMO_SPACE = "adapterinfo"

_LAYER = re.compile(r"\.layers\.(\d+)\.")
_KNOWN_SUFFIX = re.compile(r"\.(lora_A|lora_B)\.weight$|\.(lora_embedding_A|lora_embedding_B)$")
_SUFFIX = re.compile(
    r"\.(lora_A|lora_B)(?:\.[\w-]+)?\.weight$|\.(lora_embedding_A|lora_embedding_B)(?:\.[\w-]+)?$|"
    r"\.lora_magnitude_vector(?:\.[\w-]+)?(?:\.weight)?$|\.(lora_A|lora_B)(?:\.[\w-]+)?\.bias$"
)


def module_of(key: str) -> str:
    """Target module of a PEFT key: the last name segment before .lora_A/.lora_B/…"""
    stem = _SUFFIX.sub("", key)
    return stem.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class AdapterInfo:
    """Header + config facts of one adapter folder. `exists` is False when there is nothing to load."""

    path: str
    exists: bool = False
    has_config: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)  # adapter_config.json as written ({} if unusable)
    config_error: str | None = None
    weights: str | None = None  # the adapter_model.* file name found, if any
    other_weights: tuple[str, ...] = ()  # other *.safetensors in the folder (first 10)
    header_error: str | None = None
    tensors: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # tensor name → shape
    r: Any = None
    config_max_rank: int | None = None
    tensor_max_rank: int | None = None
    max_rank: int | None = None
    alpha: Any = None  # adapter_config.json's lora_alpha
    use_rslora: bool = False
    rank_pattern: bool = False  # a rank_pattern or alpha_pattern is set
    use_dora: bool = False
    bias: Any = "none"
    lora_bias: bool = False
    modules_to_save: Any = None
    init_lora_weights: Any = True
    peft_type: Any = None
    target_modules: Any = None
    base_model_name_or_path: Any = None
    unknown_keys: tuple[str, ...] = ()  # tensor names that are not plain LoRA A/B keys (first 20)
    modules: tuple[str, ...] = ()  # target module names found in the header, sorted
    max_layer: int | None = None


def read_adapter_info(folder: Path) -> AdapterInfo:
    """Read adapter_config.json and the safetensors header of `folder` (never the weights)."""
    if not folder.is_dir():
        return AdapterInfo(path=str(folder))
    cfg_path = folder / "adapter_config.json"
    cfg: dict[str, Any] = {}
    config_error = None
    has_config = cfg_path.is_file()
    if has_config:
        try:
            loaded = loads_json(cfg_path.read_text(encoding="utf-8"))
            cfg = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                config_error = "adapter_config.json is not an object"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            config_error = f"adapter_config.json unreadable: {exc}"
    else:
        config_error = "no adapter_config.json"
    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    other = tuple(sorted(p.name for p in folder.glob("*.safetensors") if p.name not in WEIGHT_NAMES)[:10])
    tensors: dict[str, tuple[int, ...]] = {}
    header_error = None
    if weights is not None and weights.suffix == ".safetensors":
        try:
            header, _, _ = read_header(weights)
            tensors = {k: tuple(t.shape) for k, t in header.items()}
        except Unreadable as exc:
            header_error = str(exc)
    return AdapterInfo(
        path=str(folder),
        exists=True,
        has_config=has_config,
        config=cfg,
        config_error=config_error,
        weights=weights.name if weights else None,
        other_weights=other,
        header_error=header_error,
        tensors=tensors,
        **_derived(cfg, tensors),
    )


def _derived(cfg: dict[str, Any], tensors: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    r = cfg.get("r")
    ranks = [r] if isinstance(r, int) and not isinstance(r, bool) else []
    rp = cfg.get("rank_pattern") or {}
    if isinstance(rp, dict):
        ranks += [v for v in rp.values() if isinstance(v, int)]
    a_ranks = [s[0] for k, s in tensors.items() if (".lora_A." in k or "lora_embedding_A" in k) and s]
    layers = [int(m.group(1)) for k in tensors if (m := _LAYER.search(k))]
    return {
        "r": r,
        "config_max_rank": max(ranks) if ranks else None,
        "tensor_max_rank": max(a_ranks) if a_ranks else None,
        "max_rank": max(ranks + a_ranks) if ranks + a_ranks else None,
        "alpha": cfg.get("lora_alpha"),
        "use_rslora": bool(cfg.get("use_rslora")),
        "rank_pattern": bool(cfg.get("rank_pattern")) or bool(cfg.get("alpha_pattern")),
        "use_dora": bool(cfg.get("use_dora")) or any("lora_magnitude_vector" in k for k in tensors),
        "bias": cfg.get("bias", "none"),
        "lora_bias": bool(cfg.get("lora_bias")) or any(k.endswith(".bias") and ".lora_" in k for k in tensors),
        "modules_to_save": cfg.get("modules_to_save"),
        "init_lora_weights": cfg.get("init_lora_weights", True),
        "peft_type": cfg.get("peft_type"),
        "target_modules": cfg.get("target_modules"),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"),
        "unknown_keys": tuple(sorted(k for k in tensors if not _KNOWN_SUFFIX.search(k))[:20]),
        "modules": tuple(sorted({module_of(k) for k in tensors})),
        "max_layer": max(layers) if layers else None,
    }


# ------------------------------------------------------------------ per-scan memo


def stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What invalidates a read: size and mtime of the config and the weights."""
    out = []
    for name in ("adapter_config.json", *WEIGHT_NAMES):
        try:
            st = (folder / name).stat()
            out.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def info_key(folder: Path) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The memo key of a folder: its resolved path (a string) and its stamp()."""
    return str(folder.resolve()), stamp(folder)


def adapter_info(folder: Path, ctx: ProbeContext) -> AdapterInfo:
    """read_adapter_info(folder), read once per scan (and again if the files change during it)."""
    return ctx.session.memo(MEMO_SPACE, info_key(folder), lambda: read_adapter_info(folder))


def remember(ctx: ProbeContext, key: tuple[str, tuple[tuple[str, int, int], ...]], info: AdapterInfo) -> None:
    """Hand this scan's memo an info read elsewhere (a registry worker process) under its info_key()."""
    ctx.session.memo(MEMO_SPACE, key, lambda: info)
