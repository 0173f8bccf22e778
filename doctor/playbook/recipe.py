"""Training recipes and the overrides playbooks and job specs apply to them.

A recipe is the rollout manifest's [recipe] table: TrainingArguments fields at the top, LoraConfig fields
under `lora`, BitsAndBytesConfig fields under `quantization`, and the data selection under `data`.
Overrides name a field by its plain name (`learning_rate`, `r`, `bnb_4bit_compute_dtype`,
`train_slices`) or by a dotted path (`lora.r`); a value `x0.5` multiplies the recorded number, and
`{multiply: 0.1, max: 2.0e-4}` multiplies and then bounds it (`min` too) — for a value so far off that a
fixed factor would not bring it back into the usual range.
Light module: playbook validation and `doctor jobs` import it on the fast path.
"""

from __future__ import annotations

import copy
import re
from typing import Any

TRAINING_KEYS = frozenset(
    {
        "learning_rate",
        "max_steps",
        "num_train_epochs",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "max_grad_norm",
        "warmup_ratio",
        "warmup_steps",
        "lr_scheduler_type",
        "weight_decay",
        "optim",
        "seed",
        "bf16",
        "fp16",
        "logging_steps",
        "eval_steps",
        "save_steps",
        "group_by_length",
        "gradient_checkpointing",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "max_seq_length",
    }
)
LORA_KEYS = frozenset(
    {
        "r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "use_rslora",
        "use_dora",
        "bias",
        "modules_to_save",
        "rank_pattern",
        "alpha_pattern",
        "init_lora_weights",
    }
)
QUANT_KEYS = frozenset(
    {
        "load_in_4bit",
        "load_in_8bit",
        "bnb_4bit_quant_type",
        "bnb_4bit_compute_dtype",
        "bnb_4bit_use_double_quant",
        "bnb_4bit_quant_storage",
    }
)
DATA_KEYS = frozenset({"train_slices", "mix", "train"})

SECTIONS = {"lora": LORA_KEYS, "quantization": QUANT_KEYS, "data": DATA_KEYS}
_MULTIPLIER = re.compile(r"^x(\d+(\.\d*)?|\.\d+)$")


class RecipeError(ValueError):
    """An override that names no known recipe field or has a bad value."""


def locate(key: str) -> tuple[str | None, str]:
    """(section, field) for an override key; section None = top-level TrainingArguments."""
    if "." in key:
        section, _, name = key.partition(".")
        if section not in SECTIONS or name not in SECTIONS[section]:
            raise RecipeError(f"unknown recipe field {key!r}")
        return section, name
    if key in TRAINING_KEYS:
        return None, key
    for section, keys in SECTIONS.items():
        if key in keys:
            return section, key
    raise RecipeError(f"unknown recipe field {key!r} (TrainingArguments, LoRA, quantization or data field expected)")


def validate_overrides(overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        locate(key)
        if isinstance(value, str) and value.startswith("x") and not _MULTIPLIER.match(value):
            raise RecipeError(f"override {key}: {value!r} is not a multiplier like x0.5")
        if isinstance(value, dict):
            _check_bounded(key, value)


def _check_bounded(key: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - {"multiply", "min", "max"}
    if unknown or "multiply" not in spec:
        raise RecipeError(f"override {key}: expected {{multiply: F, min: A, max: B}}, got keys {sorted(spec)}")
    for k, v in spec.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RecipeError(f"override {key}.{k}: {v!r} is not a number")


def _scaled(key: str, base: Any, factor: float) -> float | int:
    if not isinstance(base, (int, float)) or isinstance(base, bool):
        raise RecipeError(f"override {key}: scaling needs a recorded number, recipe has {base!r}")
    # Integer fields (r, max_steps, …) stay integers.
    return max(1, round(base * factor)) if isinstance(base, int) else base * factor


def apply_overrides(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A new recipe with overrides applied; `x0.5` multiplies the recorded value (which must exist)."""
    validate_overrides(overrides)
    out = copy.deepcopy(recipe)
    for key, value in overrides.items():
        section, name = locate(key)
        table = out if section is None else out.setdefault(section, {})
        if isinstance(value, str) and _MULTIPLIER.match(value):
            value = _scaled(key, table.get(name), float(value[1:]))
        elif isinstance(value, dict):
            bounded = _scaled(key, table.get(name), float(value["multiply"]))
            if "max" in value:
                bounded = min(bounded, value["max"])
            if "min" in value:
                bounded = max(bounded, value["min"])
            value = bounded
        table[name] = value
    return out


# What a recorded or overridden value must be, so a bad one is refused before a worker starts
# (TrainingArguments/LoraConfig would fail deep inside the job, or train on nonsense).
_POSITIVE = ("a number > 0", lambda v: _is_num(v) and v > 0)
_NON_NEGATIVE = ("a number >= 0", lambda v: _is_num(v) and v >= 0)
_UNIT = ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1)
_COUNT = ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
# HF reads logging/save/eval steps below 1 as a share of the run's steps.
_STEPS = ("an integer >= 1 or a share of the run in (0, 1)", lambda v: _COUNT[1](v) or (_is_num(v) and 0 < v < 1))
_VALUE_RULES: dict[str, tuple[str, Any]] = {
    "learning_rate": _POSITIVE,
    "num_train_epochs": _POSITIVE,
    "adam_epsilon": _POSITIVE,
    "lora_alpha": _POSITIVE,
    "max_grad_norm": _NON_NEGATIVE,
    "weight_decay": _NON_NEGATIVE,
    "warmup_ratio": ("a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1),
    "warmup_steps": _NON_NEGATIVE,
    "lora_dropout": _UNIT,
    "adam_beta1": _UNIT,
    "adam_beta2": _UNIT,
    "per_device_train_batch_size": _COUNT,
    "gradient_accumulation_steps": _COUNT,
    "logging_steps": _STEPS,
    "save_steps": _STEPS,
    "eval_steps": _STEPS,
    "max_seq_length": _COUNT,
    "r": _COUNT,
    "max_steps": ("an integer >= 1 (or -1: use num_train_epochs)", lambda v: _COUNT[1](v) or v == -1),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    **{k: _BOOL for k in ("bf16", "fp16", "group_by_length", "gradient_checkpointing", "use_rslora", "use_dora")},
    **{k: _BOOL for k in ("load_in_4bit", "load_in_8bit", "bnb_4bit_use_double_quant")},
}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # NaN is no value


def check_values(recipe: dict[str, Any]) -> None:
    """Refuse a recipe field of the wrong type or range (RecipeError naming it), e.g. learning_rate='abc'."""
    tables = [("", recipe)] + [
        (f"{k}.", recipe[k]) for k in ("lora", "quantization") if isinstance(recipe.get(k), dict)
    ]
    for prefix, table in tables:
        for name, value in table.items():
            rule = _VALUE_RULES.get(name)
            if rule is not None and value is not None and not rule[1](value):
                raise RecipeError(f"{prefix}{name} = {value!r}: expected {rule[0]}")


def describe(value: Any) -> str:
    """An override value as a person reads it: `x0.5`, `x0.1 (at most 0.0002)`, `bfloat16`."""
    if isinstance(value, dict) and "multiply" in value:
        bounds = [f"at least {value['min']:g}"] if "min" in value else []
        bounds += [f"at most {value['max']:g}"] if "max" in value else []
        return f"x{value['multiply']:g}" + (f" ({', '.join(bounds)})" if bounds else "")
    return str(value)


def describe_overrides(overrides: dict[str, Any], recipe: dict[str, Any] | None = None) -> str:
    """A job's overrides as asked, with the value a relative one became in its recipe:
    `learning_rate=x0.5 (= 0.0002)` (the method's range bounds the product)."""
    recipe = recipe or {}
    flat = {**(recipe.get("quantization") or {}), **recipe}
    out = []
    for k, v in overrides.items():
        text = f"{k}={v:g}" if isinstance(v, float) else f"{k}={describe(v)}"
        relative = (isinstance(v, str) and v.startswith("x")) or (isinstance(v, dict) and "multiply" in v)
        if relative and isinstance(flat.get(k), (int, float)):
            text += f" (= {flat[k]:g})"
        out.append(text)
    return ", ".join(out)
