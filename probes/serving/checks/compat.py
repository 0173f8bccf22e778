"""Can this engine load this adapter and serve what PEFT computes? One check per rule, per adapter × server.

These rules carry the COMPAT flag: the compatibility matrix (`doctor inspect --matrix`) runs exactly them
on every adapter × server pair, including registry versions the server does not route; the probe runs
them on the routes (`Pair.own_only`: adapter-vs-base checks probes/adapter already makes against the
manifest's base are left to it). Registration order is the order of a matrix cell's reasons.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from doctor.core.rules import Rule
from probes.serving import engines, features
from probes.serving import rules as R
from probes.serving.basemodel import dim_mismatches
from probes.serving.rules import CHECKS
from probes.serving.subjects import Base, Pair, Pairs

Got = tuple[str, dict[str, Any]] | None  # (message, evidence) or nothing to report
Detect = Callable[[Pair], Got]


def per_adapter(rule: Rule) -> Callable[[Detect], Detect]:
    """Register a per-pair detector as `rule`'s rollout check (it runs over `subject.pairs`)."""

    def register(detect: Detect) -> Detect:
        @functools.wraps(detect)
        def check(subject: Pairs, ctx: ProbeContext) -> Iterator[Finding]:
            for pair in subject.pairs:
                got = detect(pair)
                if got is not None:
                    yield pair.finding(rule, *got)

        CHECKS(rule, scope="rollout")(check)
        return detect

    return register


def _full_weight(key: str) -> bool:
    return (
        ".lora_" not in key
        and (key.endswith(".weight") or key.endswith(".bias"))
        and (
            "base_layer" in key
            or "modules_to_save" in key
            or "lm_head" in key
            or "embed_tokens" in key
            or "score" in key
        )
    )


def _covered(key: str) -> bool:
    """Keys another rule reports (magnitudes → DoRA, biases → SRV009, full weights → SRV010)."""
    return "lora_magnitude_vector" in key or (".lora_" in key and key.endswith(".bias")) or _full_weight(key)


def _covered_module(m: str) -> bool:
    return m in ("weight", "bias", "lora_magnitude_vector", "base_layer", "modules_to_save", "default")


def _same_model(declared: str, base: Base, adapter_root: Path | None) -> bool:
    if declared in base.names:
        return True
    p = Path(declared)
    if base.folder is not None and (p.is_absolute() or declared.startswith(".")):
        for anchor in (adapter_root, None):
            cand = p if p.is_absolute() else (anchor / p if anchor else None)
            if cand is not None and cand.exists() and cand.resolve() == base.folder.resolve():
                return True
    return False


def _needed_rank_cap(rank: int, caps: frozenset[int]) -> int | None:
    ok = sorted(c for c in caps if c >= rank)
    return ok[0] if ok else None


def _is_lora(pair: Pair) -> bool:
    return str(pair.info.peft_type or "LORA").upper() == "LORA"  # other types: SRV028 reports them once


@per_adapter(R.MISSING_FIELDS)
def missing_fields(pair: Pair) -> Got:
    info, name = pair.info, pair.name
    if not info.has_config:
        return f"{name}: no adapter_config.json in {info.path}", {}
    if not _is_lora(pair):
        return None
    cfg = info.config
    missing = [k for k in ("r", "lora_alpha", "target_modules") if cfg.get(k) is None]
    r = cfg.get("r")
    if missing:
        return f"{name}: adapter_config.json has no {', '.join(missing)}", {"missing": missing}
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        return f"{name}: r = {r!r}; must be an integer > 0", {"r": r}
    return None


@per_adapter(R.RANK_ABOVE_CAP)
def rank_above_cap(pair: Pair) -> Got:
    server, info = pair.server, pair.info
    rank = info.max_rank
    vllm = server.engine == "vllm"
    capped = vllm or server.engine == "sglang"  # SGLang sizes its LoRA buffers by --max-lora-rank (no default)
    if not (capped and isinstance(rank, int) and isinstance(server.max_lora_rank, int)):
        return None
    if rank <= server.max_lora_rank:
        return None
    src = "max-lora-rank" if "max_lora_rank" in server.explicit else "max-lora-rank (default)"
    nxt = _needed_rank_cap(rank, engines.allowed_caps(server.version)) if vllm else rank
    msg = f"{pair.name}: LoRA rank {rank} > {src} {server.max_lora_rank} on {pair.label}" + (
        f"; set --max-lora-rank {nxt}" if nxt else ""
    )
    ev = {
        "rank": rank,
        "config_r": info.r,
        "tensor_rank": info.tensor_max_rank,
        "max_lora_rank": server.max_lora_rank,
    }
    return msg, ev


@per_adapter(R.DORA)
def dora(pair: Pair) -> Got:
    if not pair.info.use_dora:
        return None
    vllm = pair.server.engine == "vllm"
    how = "refuses it" if vllm else "ignores the magnitude vectors silently (wrong outputs, no error)"
    ev = {"outcome": "refuses" if vllm else "different", "feature": "dora"}
    return f"{pair.name}: DoRA adapter (use_dora / lora_magnitude_vector); {pair.label} {how}", ev


@per_adapter(R.BIAS)
def adapter_bias(pair: Pair) -> Got:
    info = pair.info
    if pair.server.engine != "vllm" or ((info.bias in (None, "none")) and not info.lora_bias):
        return None
    return (
        f"{pair.name}: bias = {info.bias!r}, lora_bias = {info.lora_bias}; {pair.label} refuses adapter bias",
        {"bias": info.bias, "outcome": "refuses", "feature": "bias"},
    )


@per_adapter(R.MODULES_TO_SAVE)
def modules_to_save(pair: Pair) -> Got:
    if pair.server.engine != "vllm":
        return None
    mts = pair.info.modules_to_save or []
    full = [k for k in pair.info.tensors if _full_weight(k)]
    bad_mts = [m for m in mts if m not in ("classifier", "score")] if isinstance(mts, list) else [mts]
    if not bad_mts and not full:
        return None
    what = f"modules_to_save = {bad_mts}" if bad_mts else f"full weights {full[:3]}"
    return (
        f"{pair.name}: {what}; {pair.label} rejects them as unsupported LoRA weights",
        {"modules_to_save": bad_mts, "keys": full[:5], "outcome": "refuses", "feature": "modules_to_save"},
    )


@per_adapter(R.INIT_MODIFIES_BASE)
def init_modifies_base(pair: Pair) -> Got:
    init = pair.info.init_lora_weights
    if pair.server.engine != "vllm" or not isinstance(init, str):
        return None
    if init.lower().split("_")[0] not in engines.FORBIDDEN_INIT:
        return None
    return (
        f"{pair.name}: init_lora_weights = {init!r} modified the base weights; {pair.label} refuses it",
        {"init_lora_weights": init, "outcome": "refuses"},
    )


@per_adapter(R.UNSUPPORTED_KEYS)
def unsupported_keys(pair: Pair) -> Got:
    info, base = pair.info, pair.base
    if pair.server.engine != "vllm" or not _is_lora(pair):  # a non-LoRA type's keys: SRV028 says so once
        return None
    unknown = [k for k in info.unknown_keys if not _covered(k)]
    problems = []
    if unknown:
        problems.append(f"unsupported keys {unknown[:3]}" + (f" (+{len(unknown) - 3})" if len(unknown) > 3 else ""))
    if pair.vs_base and base.arch in engines.LLAMA_FAMILY:
        outside = [m for m in info.modules if m not in engines.LLAMA_MODULES and not _covered_module(m)]
        if outside:
            problems.append(f"target modules {outside[:4]} not in {base.arch}'s module set")
    if not problems:
        return None
    return (
        f"{pair.name}: " + "; ".join(problems),
        {"keys": unknown[:10], "peft_type": info.peft_type, "outcome": "refuses"},
    )


# Adapter features engines handle differently by version (probes.serving.features, in its table's order).


def _feature(pair: Pair, key: str) -> Got:
    return features.feature_gap(key, pair.server.engine, pair.server.version, pair.name, pair.info)


@per_adapter(R.RSLORA_IGNORED)
def rslora_ignored(pair: Pair) -> Got:
    return _feature(pair, "rslora")


@per_adapter(R.SCALING)
def per_module_scaling(pair: Pair) -> Got:
    return _feature(pair, "patterns")


@per_adapter(R.NON_LORA_TYPE)
def non_lora_type(pair: Pair) -> Got:
    return _feature(pair, "non_lora")


@per_adapter(R.MOE_EXPERTS)
def moe_experts(pair: Pair) -> Got:
    return _feature(pair, "moe")


@per_adapter(R.REGEX_TARGETS)
def regex_target_modules(pair: Pair) -> Got:
    return _feature(pair, "regex_targets")


@per_adapter(R.BASE_NAME)
def base_name(pair: Pair) -> Got:
    base, info, ref = pair.base, pair.info, pair.ref
    # adapter_config's base vs the served model: probes/adapter (ADP014) already compares it with the
    # manifest's base name, so it is left to that rule when the server serves exactly that name.
    name_dup = pair.own_only and base.manifest_name is not None and base.manifest_name in base.names
    declared = [("adapter base", info.base_model_name_or_path)] if not name_dup else []
    declared.append(("route base_model_name", ref.base_model_name if ref else None))
    for what, d in declared:
        if d and base.names and not _same_model(d, base, pair.folder):
            also = [n for n in pair.server.served_names if n != base.names[0]]
            as_ = f" (served as {', '.join(map(repr, also))})" if also else ""
            msg = f"{pair.name}: {what} {d!r} ≠ served model {base.names[0]!r}{as_}"
            return msg, {"adapter_base": d, "served": base.names}
    return None


@per_adapter(R.BASE_DIMS)
def base_dims(pair: Pair) -> Got:
    if not (pair.base.config and pair.vs_base):
        return None
    bad = dim_mismatches(pair.info, pair.base.config)
    if not bad:
        return None
    return f"{pair.name}: {len(bad)} tensor(s) do not fit the served base, e.g. {bad[0]}", {"mismatches": bad[:10]}


@per_adapter(R.VOCAB)
def vocabulary(pair: Pair) -> Got:
    cfg, server = pair.base.config, pair.server
    if not (cfg and pair.vs_base):
        return None
    vocab = cfg.get("vocab_size")
    if not isinstance(vocab, int):
        return None
    vbad = []
    for k, shape in pair.info.tensors.items():
        if "lora_embedding_A" in k and len(shape) == 2 and shape[1] != vocab:
            vbad.append(f"{k} vocab {shape[1]} ≠ base vocab_size {vocab}")
        elif ("embed_tokens" in k or "lm_head" in k) and _full_weight(k) and len(shape) == 2 and vocab not in shape:
            vbad.append(f"{k} shape {list(shape)} ≠ base vocab_size {vocab} (resized vocabulary)")
    if server.engine == "vllm" and vocab > engines.vocab_limit(server.version):
        vbad.append(f"base vocab_size {vocab} > {pair.label} LoRA limit {engines.vocab_limit(server.version)}")
    if not vbad:
        return None
    return f"{pair.name}: {vbad[0]}", {"problems": vbad[:10], "feature": "resized_vocab"}
