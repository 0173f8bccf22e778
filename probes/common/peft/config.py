"""adapter_config.json, validated field by field, and PEFT's saved key names."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.safeio import loads_json
from probes.common.peft.tuners import Tuner, tuner_for

# First PEFT release that knows a field (a config using it cannot be read by older PEFT/servers).
FIELD_SINCE = {
    "rank_pattern": "0.6",
    "alpha_pattern": "0.6",
    "use_rslora": "0.8",
    "use_dora": "0.9",
    "layer_replication": "0.10",
    "lora_bias": "0.14",
    "trainable_token_indices": "0.15",
    "target_parameters": "0.17",
    "peft_version": "0.18",
}
BIAS_VALUES = ("none", "all", "lora_only")
INIT_BASE_MODIFYING = ("pissa", "olora", "corda", "loftq", "eva")
_PREFIX = "base_model.model."
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer|decoder_layers)\.(\d+)(?:\.|$)")

# suffix → role
_SUFFIXES = (
    (".lora_A.weight", "A"),
    (".lora_B.weight", "B"),
    (".lora_embedding_A", "emb_A"),
    (".lora_embedding_B", "emb_B"),
    (".lora_magnitude_vector.weight", "magnitude"),
    (".lora_magnitude_vector", "magnitude"),
    (".lora_A.bias", "bias_A"),
    (".lora_B.bias", "bias_B"),
    # AdaLoRA keeps its factors as bare parameters (probes/common/peft/tuners.py lists every type's tensors)
    (".lora_A", "A"),
    (".lora_B", "B"),
    (".lora_E", "E"),
    (".ia3_l", "ia3"),
    *((f".{n}", n) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")),
    *((f".{n}", n) for n in ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")),
)


def version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in str(v).split(".")[:3]:
        m = re.match(r"\d+", part)
        out.append(int(m.group()) if m else 0)
    return tuple(out)


@dataclass
class ConfigIssue:
    field: str
    message: str
    severity: str = "error"
    # What kind of issue it is, for a reader that adds to it ("tuner": a tuner other than LoRA, whose
    # checks differ; the adapter family names which apply).
    kind: str = ""


@dataclass
class AdapterConfig:
    raw: dict[str, Any]
    issues: list[ConfigIssue] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        v = self.raw.get(key, default)
        return default if v is None else v

    @property
    def tuner(self) -> Tuner:
        return tuner_for(self.raw.get("peft_type"))

    @property
    def r(self) -> int | None:
        """The rank (AdaLoRA: init_r, the rank its factors start with); None for IA3 and unknown types."""
        v = self.raw.get(self.tuner.rank_field) if self.tuner.rank_field else None
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    @property
    def alpha(self) -> float | None:
        v = self.raw.get(self.tuner.alpha_field) if self.tuner.alpha_field else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def rank_masks(self) -> dict[str, int]:
        """AdaLoRA: module path → ranks kept by the saved budget mask (rank_pattern {"<path>.lora_E": [bool]})."""
        if self.tuner.label != "AdaLoRA":
            return {}
        v = self.raw.get("rank_pattern") or {}
        out = {}
        for k, mask in v.items() if isinstance(v, dict) else ():
            if isinstance(mask, list) and all(isinstance(x, bool) for x in mask):
                out[str(k).removesuffix(".lora_E")] = sum(mask)
        return out

    @property
    def use_rslora(self) -> bool:
        return bool(self.raw.get("use_rslora") or False)

    @property
    def use_dora(self) -> bool:
        return bool(self.raw.get("use_dora") or False)

    @property
    def rank_pattern(self) -> dict[str, int]:
        v = self.raw.get("rank_pattern") or {}
        return {str(k): x for k, x in v.items() if isinstance(x, int)} if isinstance(v, dict) else {}

    @property
    def alpha_pattern(self) -> dict[str, float]:
        v = self.raw.get("alpha_pattern") or {}
        return {str(k): float(x) for k, x in v.items() if isinstance(x, (int, float))} if isinstance(v, dict) else {}

    def rank_for(self, module: str) -> int | None:
        masks = self.rank_masks
        if module in masks:
            return masks[module]
        key = match_pattern(self.rank_pattern, module)
        return self.rank_pattern[key] if key is not None else self.r

    def alpha_for(self, module: str) -> float | None:
        key = match_pattern(self.alpha_pattern, module)
        return self.alpha_pattern[key] if key is not None else self.alpha

    def scale_for(self, module: str) -> float | None:
        r, alpha = self.rank_for(module), self.alpha_for(module)
        if not r or alpha is None or r <= 0:
            return None
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    @property
    def target_modules(self) -> list[str] | str | None:
        v = self.raw.get("target_modules")
        if isinstance(v, str):
            return v
        if isinstance(v, list):
            return [str(x) for x in v]
        return None

    @property
    def layers_to_transform(self) -> list[int] | None:
        v = self.raw.get("layers_to_transform")
        if isinstance(v, int) and not isinstance(v, bool):
            return [v]
        if isinstance(v, list) and all(isinstance(x, int) for x in v):
            return list(v)
        return None

    @property
    def modules_to_save(self) -> list[str]:
        v = self.raw.get("modules_to_save")
        return [str(x) for x in v] if isinstance(v, list) else []

    def min_peft_version(self) -> str | None:
        """The oldest PEFT that understands every non-default field this config uses."""
        used = [
            FIELD_SINCE[k]
            for k, v in self.raw.items()
            if k in FIELD_SINCE and k != "peft_version" and v not in (None, False, {}, [], "none")
        ]
        return max(used, key=version_tuple) if used else None


def match_pattern(patterns: dict[str, Any], module: str) -> str | None:
    """PEFT's rank_pattern/alpha_pattern lookup: first key k with re.match(rf"(.*\\.)?({k})$", module)."""
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return key
        except re.error:
            if module == key or module.endswith("." + key):
                return key
    return None


def targets_module(target_modules: list[str] | str | None, module: str) -> bool | None:
    """Whether PEFT would wrap `module` (None when it cannot say, e.g. 'all-linear')."""
    if target_modules is None:
        return None
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            return None
        try:
            return re.fullmatch(target_modules, module) is not None
        except re.error:
            return None
    return any(module == t or module.endswith("." + t) for t in target_modules)


def read_config(path: Path) -> AdapterConfig:
    """Parse and validate adapter_config.json; raises ValueError when it is not a JSON object."""
    text = path.read_text(encoding="utf-8")
    raw = loads_json(text)
    if not isinstance(raw, dict):
        raise ValueError("adapter_config.json is not a JSON object")
    cfg = AdapterConfig(raw)
    iss = cfg.issues
    peft_type = raw.get("peft_type")
    tuner = cfg.tuner
    if peft_type is None:
        iss.append(ConfigIssue("peft_type", "peft_type is missing (PEFT cannot tell which tuner to build)"))
    elif str(peft_type).upper() != "LORA":
        iss.append(ConfigIssue("peft_type", f"peft_type is {peft_type!r}", "info", kind="tuner"))
    rf, af = tuner.rank_field, tuner.alpha_field
    if rf is not None:
        r = raw.get(rf)
        if r is None:
            iss.append(ConfigIssue(rf, f"{rf} is missing"))
        elif cfg.r is None or cfg.r <= 0:
            iss.append(ConfigIssue(rf, f"{rf} = {r!r}; must be a positive integer"))
    if af is not None:
        if af not in raw:
            iss.append(ConfigIssue(af, f"{af} is missing"))
        elif cfg.alpha is None:
            iss.append(ConfigIssue(af, f"{af} = {raw[af]!r}; must be a number"))
        elif cfg.alpha <= 0:
            iss.append(ConfigIssue(af, f"{af} = {cfg.alpha:g}; must be > 0", "warning"))
    if raw.get("use_dora") and raw.get("target_parameters"):
        iss.append(
            ConfigIssue(
                "use_dora",
                "use_dora with target_parameters: PEFT raises 'lora.ParamWrapper does not work with LoRA variants "
                "like DoRA' when it builds the expert wrappers",
            )
        )
    tm = raw.get("target_modules")
    if tm is None and not raw.get("target_parameters"):
        iss.append(ConfigIssue("target_modules", "target_modules is missing"))
    elif tm is not None and not (isinstance(tm, str) or (isinstance(tm, list) and all(isinstance(x, str) for x in tm))):
        iss.append(ConfigIssue("target_modules", f"target_modules = {tm!r}; expected a list of names or a regex"))
    elif isinstance(tm, list) and not tm and not raw.get("target_parameters"):
        iss.append(ConfigIssue("target_modules", "target_modules is an empty list"))
    elif isinstance(tm, str) and tm != "all-linear":
        try:
            re.compile(tm)
        except re.error as exc:
            iss.append(ConfigIssue("target_modules", f"target_modules regex {tm!r} does not compile: {exc}"))
    bias = raw.get("bias", "none")
    if bias not in BIAS_VALUES:
        iss.append(ConfigIssue("bias", f"bias = {bias!r}; expected one of {', '.join(BIAS_VALUES)}"))
    for name in ("rank_pattern", "alpha_pattern"):
        v = raw.get(name)
        if v is None:
            continue
        if not isinstance(v, dict):
            iss.append(ConfigIssue(name, f"{name} = {v!r}; expected an object"))
            continue
        for k, x in v.items():
            if name == "rank_pattern" and tuner.label == "AdaLoRA":  # budget masks: one bool per initial rank
                if not (isinstance(x, list) and all(isinstance(b, bool) for b in x)):
                    iss.append(ConfigIssue(name, f"{name}[{k!r}] = {x!r}; AdaLoRA expects a mask of bools"))
                continue
            ok = isinstance(x, int) and x > 0 if name == "rank_pattern" else isinstance(x, (int, float)) and x > 0
            if not ok or isinstance(x, bool):
                iss.append(ConfigIssue(name, f"{name}[{k!r}] = {x!r}; expected a positive number"))
    ltt = raw.get("layers_to_transform")
    if ltt is not None and cfg.layers_to_transform is None:
        iss.append(ConfigIssue("layers_to_transform", f"layers_to_transform = {ltt!r}; expected int or list of ints"))
    mts = raw.get("modules_to_save")
    if mts is not None and not (isinstance(mts, list) and all(isinstance(x, str) for x in mts)):
        iss.append(ConfigIssue("modules_to_save", f"modules_to_save = {mts!r}; expected a list of names"))
    init = raw.get("init_lora_weights", True)
    if not (isinstance(init, (bool, str))):
        iss.append(ConfigIssue("init_lora_weights", f"init_lora_weights = {init!r}; expected a bool or a method name"))
    for k in ("use_rslora", "use_dora"):
        if k in raw and not isinstance(raw[k], bool) and raw[k] is not None:
            iss.append(ConfigIssue(k, f"{k} = {raw[k]!r}; expected true/false"))
    stated = raw.get("peft_version")
    need = cfg.min_peft_version()
    if isinstance(stated, str) and need and version_tuple(stated) < version_tuple(need):
        iss.append(
            ConfigIssue(
                "peft_version",
                f"peft_version {stated} predates fields this config uses (they need PEFT >= {need})",
                "warning",
            )
        )
    return cfg


@dataclass
class SavedModule:
    """The tensors saved for one adapted module (PEFT key names, adapter name stripped)."""

    path: str  # e.g. model.layers.0.self_attn.q_proj
    target: str  # last segment, e.g. q_proj
    layer: int | None
    tensors: dict[str, str] = field(default_factory=dict)  # role → full key


def parse_key(key: str) -> tuple[str, str] | None:
    """(module path without base_model.model., role) for a LoRA tensor key, else None."""
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            mod = key[: -len(suffix)]
            if mod.startswith(_PREFIX):
                mod = mod[len(_PREFIX) :]
            return mod, role
    return None


def key_suffix(key: str) -> str:
    for suffix, _ in _SUFFIXES:
        if key.endswith(suffix):
            return suffix
    return "." + key.rsplit(".", 1)[-1]


def layer_of(module: str) -> int | None:
    m = _LAYER.search(module)
    return int(m.group(1)) if m else None


def group_keys(keys: list[str]) -> tuple[dict[str, SavedModule], list[str]]:
    """LoRA modules by path, and the other keys (modules_to_save copies, full embeddings, biases)."""
    modules: dict[str, SavedModule] = {}
    other: list[str] = []
    for k in keys:
        parsed = parse_key(k)
        if parsed is None:
            other.append(k)
            continue
        mod, role = parsed
        sm = modules.get(mod)
        if sm is None:
            sm = modules[mod] = SavedModule(mod, mod.rsplit(".", 1)[-1], layer_of(mod))
        sm.tensors[role] = k
    return modules, other
