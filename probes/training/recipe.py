"""Training-config readers: HF training_args.json (TrainingArguments dumps), axolotl YAML, LLaMA-Factory
YAML and the rollout manifest's [recipe]. Each is normalized to one flat recipe dict:

learning_rate, max_grad_norm, warmup_ratio, warmup_steps, lr_scheduler_type, fp16, bf16, group_by_length,
max_steps, method (lora | qlora | full), stage (pt | sft | rm | dpo | ipo | orpo | kto | simpo | cpo | ppo |
grpo | rloo), adapter, load_in_4bit, load_in_8bit, quant_type, double_quant, compute_dtype, optim, source.

training_args.bin (a pickle) is never unpickled for real: `read_bin` recovers its fields with the restricted
reader in probes/training/readers/trainingargs.py. YAML goes through the capped loader
(probes/common/yamlsafe.py: size, alias expansion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext, Rollout

_DPO = {"dpo", "ipo", "kto", "orpo", "simpo", "rm", "ppo", "grpo", "cpo"}


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _dtype(v: Any) -> str | None:
    if v is None:
        return None
    t = str(v).lower().replace("torch.", "")
    return {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32"}.get(t, t)


def normalize(d: dict[str, Any], flavour: str, source: str) -> dict[str, Any]:
    r: dict[str, Any] = {"source": source, "flavour": flavour}
    for k in ("learning_rate", "max_grad_norm", "warmup_ratio", "warmup_steps", "max_steps"):
        if k in d:
            r[k] = _num(d[k])
    sched = d.get("lr_scheduler_type", d.get("lr_scheduler"))
    if sched is not None:
        r["lr_scheduler_type"] = str(sched).lower().split(".")[-1]
    for k in ("fp16", "bf16", "group_by_length", "load_in_4bit", "load_in_8bit", "gradient_checkpointing"):
        if k in d:
            r[k] = _bool(d[k]) if d[k] != "auto" else "auto"
    if "optim" in d or "optimizer" in d:
        r["optim"] = str(d.get("optim", d.get("optimizer")))
    if _bool(d.get("use_muon")):  # LLaMA-Factory's switch for the Muon optimizer
        r["optim"] = "muon"
    q = dict(d.get("quantization") or d.get("quantization_config") or {})
    q.update(d.get("bnb_config_kwargs") or {})
    for k in (
        "bnb_4bit_quant_type",
        "bnb_4bit_use_double_quant",
        "bnb_4bit_compute_dtype",
        "load_in_4bit",
        "load_in_8bit",
    ):
        if k in d and k not in q:
            q[k] = d[k]
    if q.get("load_in_4bit") is not None:
        r["load_in_4bit"] = _bool(q["load_in_4bit"])
    if q.get("load_in_8bit") is not None:
        r["load_in_8bit"] = _bool(q["load_in_8bit"])
    if "bnb_4bit_quant_type" in q:
        r["quant_type"] = str(q["bnb_4bit_quant_type"]).lower()
    if "bnb_4bit_use_double_quant" in q:
        r["double_quant"] = _bool(q["bnb_4bit_use_double_quant"])
    if "bnb_4bit_compute_dtype" in q:
        r["compute_dtype"] = _dtype(q["bnb_4bit_compute_dtype"])
    # LLaMA-Factory
    qb = _num(d.get("quantization_bit"))
    if qb is not None:
        r["load_in_4bit"], r["load_in_8bit"] = qb == 4, qb == 8
    if "quantization_type" in d:
        r["quant_type"] = str(d["quantization_type"]).lower()
    if "double_quantization" in d:
        r["double_quant"] = _bool(d["double_quantization"])
    if "compute_dtype" in d:
        r["compute_dtype"] = _dtype(d["compute_dtype"])
    adapter = d.get("adapter") or d.get("finetuning_type")
    if adapter:
        r["adapter"] = str(adapter).lower()
    method = d.get("method")
    stage = _stage(d, str(method or "").lower())
    if stage:
        r["stage"] = stage
    if method in ("lora", "qlora", "full"):
        r["method"] = method
    elif r.get("adapter") == "qlora" or (r.get("adapter") in ("lora", None) and r.get("load_in_4bit")):
        r["method"] = "qlora"
    elif r.get("adapter") == "lora":
        r["method"] = "lora"
    elif r.get("adapter") in ("full", "freeze") or (flavour == "axolotl" and not adapter):
        r["method"] = "full"  # axolotl without `adapter:` trains every weight; LLaMA-Factory full/freeze
    if method == "qlora" and "load_in_4bit" not in r and q:
        r["load_in_4bit"] = _bool(q.get("load_in_4bit"))
    return {k: v for k, v in r.items() if v is not None}


def _stage(d: dict[str, Any], method: str) -> str:
    """pt | sft | rm | dpo | ipo | orpo | kto | simpo | cpo | ppo | grpo | rloo, or "" when not said.
    LLaMA-Factory: stage (+ pref_loss orpo/simpo under stage dpo); axolotl: rl, reward_model,
    process_reward_model; a manifest may say method = "dpo"."""
    if d.get("reward_model") is True or d.get("process_reward_model") is True:
        return "rm"
    st = str(d.get("rl") or d.get("stage") or "").lower()
    if st in ("true", "false"):
        st = ""
    if st == "dpo":
        loss = str(d.get("pref_loss") or d.get("loss_type") or "").lower()
        if loss in ("orpo", "simpo", "ipo"):
            return loss
    if not st and method in _DPO:
        return method
    return st


def read_config_file(path: Path) -> tuple[dict[str, Any] | None, str, str]:
    """(recipe, problem, where): recipe None with a reason (and its position, when known) when unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return None, f"cannot read: {exc.strerror}", ""
    if not text.strip():
        return None, "file is empty", ""
    if path.suffix == ".json":
        try:
            d = loads_json(text)
        except json.JSONDecodeError as exc:
            return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", ""
        flavour = "hf_training_args"
    else:
        from probes.common.yamlsafe import load_yaml_text

        try:
            docs = load_yaml_text(text, path)
        except ReadError as err:
            return None, err.reason, err.where
        d = docs[0] if docs else None
        flavour = "llamafactory" if isinstance(d, dict) and ("stage" in d or "finetuning_type" in d) else "axolotl"
    if not isinstance(d, dict):
        return None, "not a mapping of training settings", ""
    return normalize(d, flavour, path.name), "", ""


def read_bin(path: Path) -> tuple[dict[str, Any] | None, Any]:
    """(recipe, scan) of a training_args.bin; recipe None when the scan found no safe fields."""
    from probes.training.readers.trainingargs import scan_training_args

    scan = scan_training_args(path)
    if not scan.fields:
        return None, scan
    return normalize(scan.fields, "hf_training_args_bin", path.name), scan


def from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    recipe = dict(manifest.get("recipe") or {})
    if not recipe and not manifest.get("rollout"):
        return {}
    method = (manifest.get("rollout") or {}).get("method")
    if method:
        recipe.setdefault("method", method)
    return normalize(recipe, "manifest", "rollout.toml [recipe]")


def merged(recipes: list[dict[str, Any]]) -> dict[str, Any]:
    """Later recipes fill what earlier ones lack (a logged config beats the manifest's intent)."""
    out: dict[str, Any] = {}
    for r in recipes:
        for k, v in r.items():
            out.setdefault(k, v)
    return out


def config_of(ctx: ProbeContext, path: Path) -> tuple[dict[str, Any] | None, Any]:
    """(recipe, problem or scan) of one config artifact, read once per scan (the probe and the rollout's
    merged recipe both need it): `read_bin` for training_args.bin, else `read_config_file`."""

    def read() -> tuple[dict[str, Any] | None, Any]:
        if path.suffix == ".bin":
            return read_bin(path)
        r, problem, where = read_config_file(path)
        return r, (problem, where)

    return ctx.session.memo("training.config", path, read)


def rollout_recipe(ctx: ProbeContext) -> dict[str, Any]:
    """The rollout's recipe: its config artifacts (JSON/YAML/bin) first, then the manifest's [recipe];
    merged once per rollout (ctx.shared)."""
    got = ctx.shared.get("training.recipe")
    if got is None:
        got = ctx.shared["training.recipe"] = _merged_recipe(ctx, ctx.rollout)
    return got


def _merged_recipe(ctx: ProbeContext, rollout: Rollout) -> dict[str, Any]:
    recipes = []
    for a in rollout.of_kind("training_config"):
        r, _ = config_of(ctx, a.path)
        if r:
            recipes.append(r)
    recipes.append(from_manifest(rollout.manifest))
    return merged(recipes)
