"""Silent no-op adapters: routes that load without an error and answer exactly like the base model.

Three ways it happens, each checked against what the server really has:
- adapter tensor names that match no module of the served base (a wrapper or multimodal prefix such as
  `language_model.` or a doubled `model.`): the engine finds no module to put them on (vllm#34186);
- target modules the engine is told not to apply LoRA to (`--lora-target-modules` on vLLM / SGLang):
  vLLM loads the adapter and skips them (vllm#55193);
- an all-zero lora_B: B·A = 0, the update is nothing.

Base module names come from the served base's safetensors header (or its index), the names the engine
loads — or, for a folder with config.json only, from probes.adapter's architecture table; the adapter's
from its own header. lora_B values are read only here, per served route, stopping at
the first non-zero tensor (a trained adapter costs one tensor read).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probes.common.adapterinfo import AdapterInfo
from probes.common.peft.arch import architecture_for
from probes.common.safetensors_io import TensorReader, Unreadable, read_header
from probes.serving import rules as R

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext

_LORA_KEY = re.compile(
    r"^(?P<stem>.+?)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[\w-]+)?(?:\.weight)?$"
)
_PACKED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def base_weight_names(folder: Path, ctx: ProbeContext) -> frozenset[str] | None:
    """Parameter names of a base model folder (safetensors header or index), or None when unreadable;
    read once per scan (many routes share a base)."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    src = index if index.is_file() else single if single.is_file() else None
    if src is None:
        return None
    st = src.stat()
    key = (str(src.resolve()), st.st_size, st.st_mtime_ns)
    return ctx.session.memo("serving.base_weight_names", key, lambda: _weight_names(src, index))


def _weight_names(src: Path, index: Path) -> frozenset[str] | None:
    try:
        if src == index:
            wm = json.loads(src.read_text(encoding="utf-8")[:50_000_000]).get("weight_map")
            return frozenset(str(k) for k in wm) if isinstance(wm, dict) else None
        return frozenset(read_header(src)[0])
    except (OSError, ValueError, UnicodeDecodeError, Unreadable, AttributeError):
        return None


def lora_modules(tensors: dict[str, Any]) -> dict[str, list[str]]:
    """Module path (prefix base_model.model. removed, ParamWrapper .base_layer chains folded) → its keys."""
    out: dict[str, list[str]] = {}
    for key in tensors:
        m = _LORA_KEY.match(key)
        if not m:
            continue
        stem = m.group("stem").removeprefix("base_model.model.")
        while stem.endswith(".base_layer"):
            stem = stem[: -len(".base_layer")]
        out.setdefault(stem, []).append(key)
    return out


def _exists(stem: str, names: frozenset[str], tied: bool) -> bool:
    if stem + ".weight" in names or any(n.startswith(stem + ".") for n in names):
        return True
    return tied and stem.endswith("lm_head") and any(n.endswith("embed_tokens.weight") for n in names)


def _expected(stem: str, by_last: dict[str, list[str]]) -> str | None:
    """The base module this stem most likely meant: the one sharing the longest run of trailing segments."""
    parts = stem.split(".")
    best, best_n = None, 1
    for cand in by_last.get(parts[-1], []):
        cp = cand.split(".")
        n = 0
        while n < min(len(cp), len(parts)) and cp[-1 - n] == parts[-1 - n]:
            n += 1
        if n > best_n or (n == best_n and best is not None and len(cand) < len(best)):
            best, best_n = cand, n
    return best if best_n >= 2 else None


def _prefix_hint(stem: str, exp: str) -> str:
    a, b = stem.split("."), exp.split(".")
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    have, want = ".".join(a[: len(a) - n]), ".".join(b[: len(b) - n])
    return f"; prefix {have + '.' if have else '(none)'!r} where the base has {want + '.' if want else '(none)'!r}"


def name_mismatch(
    info: AdapterInfo, base_folder: Path, base_config: dict[str, Any] | None, ctx: ProbeContext
) -> tuple | None:
    """(rule, message, evidence) when adapter modules match no module of the base."""
    names = base_weight_names(base_folder, ctx)
    mods = lora_modules(info.tensors or {})
    source = "weights"
    if names is None and base_config:
        # No readable weights (a config-only folder): the module paths of probes.adapter's architecture table.
        arch = architecture_for(base_config)
        if arch is not None:
            names = frozenset(p + ".weight" for p in arch.modules)
            mods = {s: k for s, k in mods.items() if not arch.is_unmodelled(s)}
            source = "architecture table"
    if not names or not mods:
        return None
    # Module kinds the base has at all: when it has none of the adapter's (another architecture, or a
    # partial weights file), the base-mismatch rules speak, not this one.
    kinds = {n.rsplit(".", 2)[-2] for n in names if n.count(".") >= 1}
    if not kinds & {s.rsplit(".", 1)[-1] for s in mods}:
        return None
    tied = bool((base_config or {}).get("tie_word_embeddings"))
    missing = sorted(s for s in mods if not _exists(s, names, tied))
    if not missing:
        return None
    by_last: dict[str, list[str]] = {}
    for n in names:
        mod = n.rsplit(".", 1)[0]
        by_last.setdefault(mod.rsplit(".", 1)[-1], []).append(mod)
    expected = {s: _expected(s, by_last) for s in missing[:50]}
    first = missing[0]
    exp = expected.get(first)
    hint = _prefix_hint(first, exp) if exp else ""
    everything = len(missing) == len(mods)
    what = (
        "no adapter tensor matches a module of the served base: this adapter would be served as the base model"
        if everything
        else f"{len(missing)} of {len(mods)} adapted modules match no module of the served base: the engine "
        "drops them and serves different outputs"
    )
    key = mods[first][0]
    msg = f"{what} — e.g. {key} (module {first!r}), expected {exp!r}{hint}" if exp else f"{what} — e.g. {key}"
    ev = {
        "tensors": [mods[s][0] for s in missing[:10]],
        "expected": {s: e for s, e in list(expected.items())[:10]},
        "missing": len(missing),
        "modules": len(mods),
        "outcome": "base_model" if everything else "different",
        "base_names_from": source,
    }
    return (R.NAMES_MATCH_NO_MODULE, msg, ev)


def not_applied(server_targets: list[str], engine: str, info: AdapterInfo) -> tuple | None:
    """Adapter modules outside the engine's --lora-target-modules."""
    if not server_targets or "all" in server_targets:
        return None
    allowed = set(server_targets)
    for packed, parts in _PACKED.items():
        if packed in allowed:
            allowed.update(parts)
    mods = lora_modules(info.tensors or {})
    suffixes = {s.rsplit(".", 1)[-1] for s in mods}
    if not suffixes:
        return None
    skipped = sorted(suffixes - allowed)
    if not skipped:
        return None
    flag = "--lora-target-modules " + " ".join(server_targets)
    ev = {"skipped": skipped, "adapter_modules": sorted(suffixes), "lora_target_modules": server_targets}
    if len(skipped) == len(suffixes):
        msg = (
            f"{engine} applies LoRA only to {flag}; the adapter adapts {', '.join(sorted(suffixes))} — none of "
            "them: this adapter would be served as the base model (vllm#55193)"
        )
        return (R.TARGETS_NOT_APPLIED, msg, {**ev, "outcome": "base_model"})
    msg = (
        f"{engine} applies LoRA only to {flag}; the adapter's {', '.join(skipped)} are skipped: it loads and "
        "serves different outputs"
    )
    return (R.TARGETS_NOT_APPLIED, msg, {**ev, "outcome": "different"})


def zero_b(folder: Path, weights: str | None) -> tuple | None:
    """(rule, message, evidence) when every lora_B tensor is exactly zero."""
    if not weights or not weights.endswith(".safetensors"):
        return None
    path = folder / weights
    try:
        tensors, _, size = read_header(path)
    except Unreadable:
        return None  # the adapter probe reports an unreadable file
    bs = [t for k, t in tensors.items() if ".lora_B" in k or "lora_embedding_B" in k]
    if not bs:
        return None
    try:
        with TensorReader(path, size) as rd:
            for t in bs:
                a = rd.f32(t)
                nonzero = bool(np.any(a != 0))
                del a
                rd.release(t)
                if nonzero:
                    return None
    except (Unreadable, OSError, ValueError):
        return None
    names = [t.name for t in bs]
    msg = (
        f"all {len(bs)} lora_B tensors are exactly zero (B·A = 0): this adapter would be served as the base "
        f"model — e.g. {names[0]}"
    )
    return (R.ZERO_B, msg, {"tensors": names[:10], "count": len(bs), "outcome": "base_model"})
