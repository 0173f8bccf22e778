"""What each engine does with an adapter feature, by version — the table behind docs/engine-features.md.

Each row names a feature an adapter can use, how doctor sees it in adapter_config.json and the safetensors
header, and per engine a list of (first version, outcome, source): `refuses` (the engine refuses to load
the adapter — start-up or the load request fails), `different` (it loads the adapter and serves outputs
that differ from PEFT's), `ok`. The newest row at or below the server's version applies; an unpinned
engine is checked as the newest release described. Engines or versions the table does not describe give
no finding (doctor does not guess). Features with their own older rules (DoRA SRV008, bias SRV009,
modules_to_save SRV010, resized vocabulary SRV012) keep them; docs/engine-features.md lists every row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from probes.common.adapterinfo import AdapterInfo
from probes.common.peft.config import AdapterConfig, match_pattern
from probes.serving import engines
from probes.serving import rules as R

OUTCOME_TEXT = {
    "refuses": "refuses to load it",
    "different": "loads it and serves different outputs",
}
VLLM_RSLORA = "https://github.com/vllm-project/vllm/pull/6909"
VLLM_PEFT_HELPER = "https://github.com/vllm-project/vllm/blob/main/vllm/lora/peft_helper.py"
VLLM_MOE_LORA = "https://github.com/vllm-project/vllm/pull/21229"
VLLM_MOE_LORA_B = "https://github.com/vllm-project/vllm/pull/31534"
VLLM_UNSUPPORTED_WEIGHT = "https://github.com/vllm-project/vllm/issues/21500"
LORAX_RSLORA = "https://github.com/predibase/lorax/pull/299"
SGLANG_TARGETS = "https://github.com/verl-project/verl/pull/7288"
SERVING_REF = "/work/shared/reference/serving.md#19"

Support = tuple[tuple[int, ...], str, str]  # (first version, outcome, source)


@dataclass(frozen=True)
class Feature:
    key: str
    title: str
    rule: Any  # doctor.core.rules.Rule
    detect: Callable[[AdapterInfo, AdapterConfig], dict[str, Any] | None]
    support: dict[str, tuple[Support, ...]]

    def outcome(self, engine: str, version: str | None) -> tuple[str, str] | None:
        rows = self.support.get(engine)
        if not rows:
            return None
        v = engines.parse_version(version)
        chosen = None
        for since, outcome, src in rows:
            if v is None or v >= since:
                chosen = (outcome, src)
        return chosen


# ------------------------------------------------------------------ detectors (adapter info → evidence or None)


def _rslora(info: AdapterInfo, cfg: AdapterConfig) -> dict[str, Any] | None:
    if not cfg.use_rslora or not cfg.r or cfg.alpha is None:
        return None
    peft, plain = cfg.alpha / math.sqrt(cfg.r), cfg.alpha / cfg.r
    return {
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "peft_scale": round(peft, 6),
        "engine_scale": round(plain, 6),
        "factor": round(peft / plain, 4),
        "why": f"scale {cfg.alpha:g}/{cfg.r} = {plain:.4g} instead of {cfg.alpha:g}/√{cfg.r} = {peft:.4g}: "
        f"the update is {math.sqrt(cfg.r):.3g}× (√r) too small",
    }


def _patterns(info: AdapterInfo, cfg: AdapterConfig) -> dict[str, Any] | None:
    """Modules whose PEFT scale (per-module r/alpha) differs from the single alpha/r an engine applies."""
    if not (cfg.rank_pattern or cfg.alpha_pattern) or not cfg.r or cfg.alpha is None:
        return None
    glob = cfg.alpha / (math.sqrt(cfg.r) if cfg.use_rslora else cfg.r)
    off: dict[str, float] = {}
    for key in info.tensors:
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        if match_pattern(cfg.rank_pattern, module) is None and match_pattern(cfg.alpha_pattern, module) is None:
            continue
        s = cfg.scale_for(module)
        if s is not None and not math.isclose(s, glob, rel_tol=1e-6):
            off[module] = round(s / glob, 4)
    if not off:
        return None
    first = next(iter(off))
    return {
        "modules": dict(list(off.items())[:10]),
        "count": len(off),
        "why": f"{len(off)} module(s) scaled by the global alpha/r; e.g. {first} should be {off[first]}× that",
    }


_NON_LORA = frozenset(
    {"IA3", "LOHA", "LOKR", "ADALORA", "OFT", "BOFT", "VERA", "FOURIERFT", "HRA", "BONE", "LN_TUNING"}
)


def _non_lora(info: AdapterInfo, cfg: AdapterConfig) -> dict[str, Any] | None:
    pt = str(info.peft_type or "").upper()
    return {"peft_type": pt, "why": f"peft_type {pt} is not LORA"} if pt in _NON_LORA else None


def _moe(info: AdapterInfo, cfg: AdapterConfig) -> dict[str, Any] | None:
    keys = [k for k in info.tensors if ".experts." in k and ".lora_" in k]
    targets = cfg.raw.get("target_parameters")
    if not keys and not targets:
        return None
    return {
        "keys": keys[:5],
        "count": len(keys),
        "target_parameters": targets,
        "why": f"{len(keys)} MoE expert tensor(s), e.g. {keys[0]}" if keys else f"target_parameters {targets}",
    }


def _regex_targets(info: AdapterInfo, cfg: AdapterConfig) -> dict[str, Any] | None:
    tm = cfg.raw.get("target_modules")
    if isinstance(tm, str):
        return {"target_modules": tm, "why": f"target_modules is the string '{tm}' (a regex / shorthand)"}
    return None


FEATURES: tuple[Feature, ...] = (
    Feature(
        "rslora",
        "rsLoRA scaling (use_rslora)",
        R.RSLORA_IGNORED,
        _rslora,
        {
            "vllm": (((0, 0), "different", VLLM_RSLORA), ((0, 5, 4), "ok", VLLM_PEFT_HELPER)),
            "lorax": (((0, 0), "different", LORAX_RSLORA), ((0, 9), "ok", LORAX_RSLORA)),
        },
    ),
    Feature(
        "patterns",
        "rank_pattern / alpha_pattern",
        R.SCALING,
        _patterns,
        {
            "vllm": (((0, 0), "different", VLLM_PEFT_HELPER),),
            "tgi": (((0, 0), "different", SERVING_REF),),
            "lorax": (((0, 0), "different", SERVING_REF),),
        },
    ),
    Feature(
        "non_lora",
        "non-LoRA PEFT types (IA3, LoHa, LoKr, AdaLoRA, …)",
        R.NON_LORA_TYPE,
        _non_lora,
        {
            "vllm": (((0, 0), "refuses", VLLM_UNSUPPORTED_WEIGHT),),
            "tgi": (((0, 0), "refuses", SERVING_REF),),
            "lorax": (((0, 0), "refuses", SERVING_REF),),
            "sglang": (((0, 0), "refuses", SGLANG_TARGETS),),
        },
    ),
    Feature(
        "moe",
        "MoE expert modules",
        R.MOE_EXPERTS,
        _moe,
        {
            "vllm": (
                ((0, 0), "refuses", VLLM_MOE_LORA),
                ((0, 11, 1), "different", VLLM_MOE_LORA_B),
                ((0, 14), "ok", VLLM_MOE_LORA_B),
            ),
            "tgi": (((0, 0), "different", SERVING_REF),),
            "lorax": (((0, 0), "different", SERVING_REF),),
        },
    ),
    Feature(
        "regex_targets",
        "regex-string target_modules",
        R.REGEX_TARGETS,
        _regex_targets,
        {"sglang": (((0, 0), "refuses", SGLANG_TARGETS),)},
    ),
)

BY_KEY = {f.key: f for f in FEATURES}


def feature_gap(key: str, engine: str, version: str | None, name: str, info: AdapterInfo) -> tuple[str, dict] | None:
    """(message, evidence) when this adapter uses feature `key` and this engine version lacks it."""
    feat = BY_KEY[key]
    ev = feat.detect(info, AdapterConfig(dict(info.config)))
    if ev is None:
        return None
    got = feat.outcome(engine, version)
    if got is None or got[0] == "ok":
        return None
    outcome, src = got
    why = ev.pop("why")
    msg = f"{name}: {feat.title}: {engines.version_label(engine, version)} {OUTCOME_TEXT[outcome]} — {why}"
    return msg, {"feature": feat.key, "outcome": outcome, "source": src, **ev}
