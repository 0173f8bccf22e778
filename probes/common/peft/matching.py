"""Which base modules a PEFT config adapts, decided the way PEFT decides it (no torch).

Follows peft (0.17–0.21) `tuners_utils.check_target_module_exists`, `_maybe_include_all_linear_layers`,
`BaseTuner._inject_parameters` and `utils.other.get_pattern_key`:

* keys are full module paths of the base model (`model.layers.0.self_attn.q_proj`);
* `exclude_modules` (regex string: fullmatch; list: exact or `.name` suffix) and `modules_to_save`
  (`(^|.*\\.)name($|\\..*)`) remove a key first;
* a string `target_modules` is a regex that must fullmatch the key, except `all-linear`: every
  Linear/Conv1D but the output embedding;
* a list entry matches a key exactly — then without the layer filter — or as a `.entry` suffix, and
  `layers_to_transform` / `layers_pattern` then keep only keys whose first numbered segment (after
  `layers_pattern`, when given) is a listed layer;
* `target_parameters` entries match `module.param` exactly or as a suffix; the matched parameters of one
  module are wrapped in registration order, each wrapper around the previous one, so the last sits at
  the module's path and earlier ones at `.base_layer`, `.base_layer.base_layer`, …; their LoRA factors
  are [experts·r, in] and [out, experts·r];
* rank / alpha: the first `rank_pattern` / `alpha_pattern` key k with `re.match(rf"(.*\\.)?({k})$", key)`,
  else r / lora_alpha; scale = alpha/r, or alpha/√r with use_rslora.

PEFT converts a transformers-v4 MoE config (Mixtral `w1/w2/w3/gate`, Qwen2-MoE expert `gate_proj/…`) at
load time to the fused v5 parameters; `LEGACY_MOE` mirrors that mapping so such configs match too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from probes.common.peft.arch import ADAPTABLE, CONTAINER, CONV1D, EMBEDDING, LINEAR, PARAM, Architecture, Spec
from probes.common.peft.tuners import tuner_for

ALL_LINEAR = "all-linear"
# peft.utils.transformers_weight_conversion: v4 MoE target names → the v5 parameter they became.
LEGACY_MOE = {
    "mixtral": {"gate": "gate.weight", "w1": "gate_up_proj", "w3": "gate_up_proj", "w2": "down_proj"},
    "qwen2_moe": {"gate": "gate.weight", "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj",
                  "down_proj": "down_proj"},
}  # fmt: skip
LEGACY_FUSED = {"mixtral": ("w1", "w3"), "qwen2_moe": ("gate_proj", "up_proj")}
# transformers.conversion_mapping._MODEL_TO_CONVERSION_PATTERN (+ peft's "mixtral") for the families in
# arch.py. "qwen2_moe" itself is not a key there, so peft converts nothing for Qwen2-MoE (measured, peft 0.21).
CONVERSION = {"mixtral": "mixtral", "qwen3_moe": "qwen2_moe"}


@dataclass(frozen=True)
class Target:
    """One adapted base module or parameter, with the rank and scale PEFT gives it."""

    spec: Spec
    saved_path: str  # the module path its tensors are saved under (ParamWrapper chains add .base_layer)
    r: int
    alpha: float
    scale: float

    @property
    def lora_a_shape(self) -> tuple[int, int]:
        if self.spec.kind == EMBEDDING:
            return (self.r, self.spec.in_features)  # lora_embedding_A [r, num_embeddings]
        return (self.r * self.spec.experts, self.spec.in_features)

    @property
    def lora_b_shape(self) -> tuple[int, int]:
        if self.spec.kind == EMBEDDING:
            return (self.spec.out_features, self.r)  # lora_embedding_B [embedding_dim, r]
        return (self.spec.out_features, self.r * self.spec.experts)


@dataclass
class Matching:
    """What a config adapts in one Architecture."""

    targets: dict[str, Target] = field(default_factory=dict)  # base path → Target
    by_saved_path: dict[str, Target] = field(default_factory=dict)  # saved module path → Target
    modules_to_save: list[str] = field(default_factory=list)  # base module paths copied whole
    excluded: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # matched paths PEFT cannot wrap (it raises)
    unmatched_entries: list[str] = field(default_factory=list)  # target_modules entries matching no module
    unmatched_parameters: list[str] = field(default_factory=list)  # target_parameters entries matching none
    unmatched_patterns: list[str] = field(default_factory=list)  # rank/alpha_pattern keys matching no target
    converted_moe: bool = False  # PEFT rewrites this config's MoE targets (see convert_legacy_moe)

    @property
    def nothing_matched(self) -> bool:
        return not self.targets

    def share(self, arch: Architecture) -> tuple[int, int]:
        """(adapted linear/conv1d modules, all linear/conv1d modules but the output head)."""
        lin = set(arch.linear_paths())
        return len(lin & set(self.targets)), len(lin)


def _field(cfg: Any, name: str, default: Any = None) -> Any:
    raw = cfg.raw if hasattr(cfg, "raw") else cfg
    v = raw.get(name, default) if isinstance(raw, dict) else default
    return default if v is None else v


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def pattern_key(patterns: dict[str, Any], key: str) -> str | None:
    """peft.utils.other.get_pattern_key: the first pattern k with re.match(rf"(.*\\.)?({k})$", key)."""
    for k in patterns:
        try:
            if re.match(rf"(.*\.)?({k})$", key):
                return k
        except re.error:
            continue
    return None


def _excluded(cfg: Any, key: str) -> bool:
    ex = _field(cfg, "exclude_modules")
    if isinstance(ex, str) and ex:
        try:
            if re.fullmatch(ex, key):
                return True
        except re.error:
            pass
    elif isinstance(ex, list) and (key in ex or any(key.endswith(f".{e}") for e in ex if isinstance(e, str))):
        return True
    return _is_saved_whole(cfg, key)


def _is_saved_whole(cfg: Any, key: str) -> bool:
    mts = _field(cfg, "modules_to_save")
    if not isinstance(mts, list):
        return False
    for m in mts:
        if isinstance(m, str):
            try:
                if re.match(rf"(^|.*\.){m}($|\..*)", key):
                    return True
            except re.error:
                continue
    return False


def _layer_index(key: str, layers_pattern: Any) -> int | None:
    pats = [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern
    if not pats:
        m = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
    else:
        m = None
        for p in pats:
            if not isinstance(p, str):
                continue
            try:
                m = re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", key)
            except re.error:
                m = None
            if m is not None:
                break
    return int(m.group("idx")) if m else None


def target_module_exists(cfg: Any, key: str, arch: Architecture | None = None) -> bool:
    """peft's check_target_module_exists for one module path (exclusions already applied by the caller)."""
    tm = _field(cfg, "target_modules")
    if isinstance(tm, str):
        if tm.lower() == ALL_LINEAR:
            return arch is not None and key in set(arch.linear_paths())
        try:
            return re.fullmatch(tm, key) is not None
        except re.error:
            return False
    if not isinstance(tm, list):
        return False
    names = [t for t in tm if isinstance(t, str)]
    if key in names:
        return True
    if not any(key.endswith(f".{t}") for t in names):
        return False
    ltt = _field(cfg, "layers_to_transform")
    if ltt is None or ltt == []:
        return True
    idx = _layer_index(key, _field(cfg, "layers_pattern"))
    if idx is None:
        return False
    return idx == ltt if isinstance(ltt, int) else isinstance(ltt, list) and idx in ltt


def convert_legacy_moe(adapter_config: Any, arch: Architecture) -> dict[str, Any]:
    """peft's `_convert_peft_config_moe` (run at get_peft_model and at load): on Mixtral / Qwen2-MoE, target
    names of the v4 per-expert Linear layers (and `all-linear`, a regex) become v5 `target_parameters`, and a
    fully targeted fused pair doubles r and alpha for `gate_up_proj`. Returns the config as PEFT sees it."""
    raw = dict(adapter_config.raw if hasattr(adapter_config, "raw") else adapter_config)
    pattern = CONVERSION.get(arch.family)
    if pattern is None:
        return raw
    mapping = LEGACY_MOE[pattern]
    tm = raw.get("target_modules")
    if isinstance(tm, str):
        if tm.lower() == ALL_LINEAR:
            resolved = {p.rsplit(".", 1)[-1] for p in arch.linear_paths()} | set(mapping)
        else:
            keys = [p for p, s in arch.modules.items()] + _containers(arch)
            resolved = {k.rsplit(".", 1)[-1] for k in keys if _fullmatch(tm, k) and not _excluded(raw, k)}
            owners = {s.owner for s in arch.modules.values() if s.kind == PARAM}
            resolved |= {old for old in mapping for o in owners if _fullmatch(tm, f"{o}.{old}")}
        if not resolved:
            return raw
        tm = sorted(resolved)
    if not isinstance(tm, list):
        return raw
    params = [p for p in raw.get("target_parameters") or [] if isinstance(p, str)]
    remaining, present = [], set()
    for t in tm:
        if not isinstance(t, str):
            continue
        new = next((n for old, n in mapping.items() if t == old or t.endswith(f".{old}")), None)
        if new is None:
            remaining.append(t)
            continue
        if new not in params:
            params.append(new)
        present.update(old for old in mapping if t == old or t.endswith(f".{old}"))
    fused = LEGACY_FUSED[pattern]
    if present.issuperset(fused):
        r, alpha = raw.get("r"), raw.get("lora_alpha")
        key = r".*\.gate_up_proj"
        rp, ap = dict(raw.get("rank_pattern") or {}), dict(raw.get("alpha_pattern") or {})
        if isinstance(r, int) and key not in rp:
            rp[key] = r * len(fused)
        if isinstance(alpha, (int, float)) and key not in ap:
            ap[key] = alpha * len(fused)
        raw["rank_pattern"], raw["alpha_pattern"] = rp, ap
    raw["target_modules"], raw["target_parameters"] = remaining, params
    return raw


def _fullmatch(pattern: str, key: str) -> bool:
    try:
        return re.fullmatch(pattern, key) is not None
    except re.error:
        return False


def match_targets(adapter_config: Any, arch: Architecture) -> Matching:
    """What PEFT would adapt in `arch` with this adapter_config (a dict or AdapterConfig)."""
    m = Matching()
    original = adapter_config.raw if hasattr(adapter_config, "raw") else adapter_config
    adapter_config = convert_legacy_moe(adapter_config, arch)
    if adapter_config.get("target_modules") != original.get("target_modules"):
        m.converted_moe = True
    tuner = tuner_for(_field(adapter_config, "peft_type"))
    r = _field(adapter_config, tuner.rank_field or "r")
    r = r if isinstance(r, int) and not isinstance(r, bool) and r > 0 else 8
    alpha = _num(_field(adapter_config, tuner.alpha_field or "lora_alpha")) or 8.0
    rs = bool(_field(adapter_config, "use_rslora", False))
    rank_pattern = _field(adapter_config, "rank_pattern", {})
    alpha_pattern = _field(adapter_config, "alpha_pattern", {})
    rank_pattern = rank_pattern if isinstance(rank_pattern, dict) else {}
    alpha_pattern = alpha_pattern if isinstance(alpha_pattern, dict) else {}
    used_patterns: set[str] = set()

    masks = {}  # AdaLoRA: rank_pattern holds budget masks {"<path>.lora_E": [bool, …]}, not ranks
    if tuner.label == "AdaLoRA":
        masks = {str(k).removesuffix(".lora_E"): v for k, v in rank_pattern.items() if isinstance(v, list)}
        used_patterns.update(k for k in rank_pattern if isinstance(rank_pattern[k], list))

    def target(spec: Spec, saved: str) -> Target:
        rk, ak = pattern_key(rank_pattern, spec.path), pattern_key(alpha_pattern, spec.path)
        rr = rank_pattern[rk] if rk is not None and isinstance(rank_pattern[rk], int) else r
        if spec.path in masks:
            rr = sum(1 for x in masks[spec.path] if x is True)
        aa = _num(alpha_pattern[ak]) if ak is not None else None
        aa = alpha if aa is None else aa
        used_patterns.update(k for k in (rk, ak) if k is not None)
        # AdaLoRA divides by its initial rank (ranknum), whatever the mask kept
        scale = aa / r if tuner.label == "AdaLoRA" else aa / math.sqrt(rr) if rs else aa / max(rr, 1)
        return Target(spec, saved, rr, aa, scale)

    tm = _field(adapter_config, "target_modules")
    entries = [t for t in tm if isinstance(t, str)] if isinstance(tm, list) else []
    hit_entries: set[str] = set()
    containers = _containers(arch)
    for path, spec in list(arch.modules.items()) + [(p, None) for p in containers]:
        if spec is not None and spec.kind == PARAM:
            continue
        if _is_saved_whole(adapter_config, path):
            if any(path == x or path.endswith(f".{x}") for x in _field(adapter_config, "modules_to_save", [])):
                m.modules_to_save.append(path)
            continue
        if _excluded(adapter_config, path):
            m.excluded.append(path)
            continue
        if not target_module_exists(adapter_config, path, arch):
            continue
        hit_entries.update(t for t in entries if path == t or path.endswith(f".{t}"))
        if spec is None or spec.kind not in ADAPTABLE:
            m.unsupported.append(path)
            continue
        t = target(spec, path)
        m.targets[path] = t
        m.by_saved_path[path] = t
    params = [p for p in _field(adapter_config, "target_parameters", []) if isinstance(p, str)]
    m.unmatched_entries = [t for t in entries if t not in hit_entries]
    if params:
        hit_params: set[str] = set()
        chains: dict[str, list[Spec]] = {}
        for spec in arch.modules.values():
            if spec.kind != PARAM:
                continue
            for p in params:
                if spec.path == p or spec.path.endswith(f".{p}"):
                    chains.setdefault(spec.owner, []).append(spec)
                    hit_params.add(p)
                    break
        for owner, chain in chains.items():
            for k, spec in enumerate(chain):
                saved = owner + ".base_layer" * (len(chain) - 1 - k)
                t = target(spec, saved)
                m.targets[spec.path] = t
                m.by_saved_path[saved] = t
        m.unmatched_parameters = [p for p in params if p not in hit_params]
    m.unmatched_patterns = [k for k in list(rank_pattern) + list(alpha_pattern) if k not in used_patterns]
    return m


def _containers(arch: Architecture) -> list[str]:
    """Non-leaf module paths (a decoder layer, `self_attn`, `mlp`, the root): a target_modules entry or regex
    that names one makes PEFT raise 'Target module … is not supported'."""
    seen: set[str] = set()
    out: list[str] = []
    for path, spec in arch.modules.items():
        parts = (spec.owner if spec.kind == PARAM else path).split(".")
        for i in range(1, len(parts)):
            p = ".".join(parts[:i])
            if p not in seen and p not in arch.modules:
                seen.add(p)
                out.append(p)
    return out


def kind_label(spec: Spec) -> str:
    return {LINEAR: "Linear", CONV1D: "Conv1D", EMBEDDING: "Embedding", PARAM: "parameter", CONTAINER: "module"}[
        spec.kind
    ]
