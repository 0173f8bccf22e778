"""`doctor init PATH`: a rollout.toml for a folder made outside doctor (HF Trainer / TRL output, bare adapter).

What it reads (never executing anything): adapter_config.json (LoRA fields, base model name or local path),
trainer_state.json (the training log, top level or the newest checkpoint-*/), training_args.bin through the
restricted unpickler (probes.training.readers.trainingargs) or training_args.json, and the model card's
`base_model`. What it cannot read comes from flags (or prompts on a terminal): the local base model folder,
the training data, the eval set and baseline table.
Light module (no torch): the manifest is written with doctor.jobs.compare.dumps_toml.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.playbook.recipe import TRAINING_KEYS

# TrainingArguments fields a corrective retrain reuses (the rest describe the machine or the logging).
RECIPE_FIELDS = (TRAINING_KEYS - {"max_seq_length"}) | {"save_strategy"}
LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora", "bias")


class InitError(ValueError):
    """A folder doctor init cannot describe (names the file and the problem)."""


@dataclass
class Found:
    root: Path
    manifest: dict[str, Any]
    read: list[str] = field(default_factory=list)  # "adapter_config.json: r=8, base peft-doctor/tiny-base"
    missing: list[str] = field(default_factory=list)  # "base model (--base-model DIR)"
    warnings: list[str] = field(default_factory=list)


def _json(path: Path) -> dict[str, Any]:
    from doctor.core.safeio import loads_json

    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InitError(f"{path}: cannot read: {exc}") from None
    except Exception as exc:
        raise InitError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise InitError(f"{path}: expected a JSON object")
    return data


def _newest_checkpoint(root: Path) -> Path | None:
    ckpts = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None


def _card_base_model(readme: Path) -> str | None:
    """`base_model:` from a model card's YAML front matter (peft/transformers write one)."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return None
    m = re.match(r"---\s*\n(.*?)\n---", text, re.S)
    if not m:
        return None
    hit = re.search(r"^base_model:\s*(\S.*)$", m.group(1), re.M)
    return hit.group(1).strip().strip("'\"") if hit else None


def _rel(root: Path, p: Path) -> str:
    """Relative to the rollout when inside it (the folder can move), else absolute."""
    p, root = p.resolve(), root.resolve()
    return os.path.relpath(p, root) if p.is_relative_to(root) else str(p)


def discover(
    root: Path,
    *,
    base_model: Path | None = None,
    train_data: Path | None = None,
    eval_set: Path | None = None,
    baseline: Path | None = None,
    method: str | None = None,
    name: str | None = None,
    adapter_name: str | None = None,
) -> Found:
    root = Path(root)
    if not root.is_dir():
        raise InitError(f"{root}: no such folder")
    found = Found(root, {})
    ckpt = _newest_checkpoint(root)
    adapter_dir = next((d for d in (root, ckpt) if d is not None and (d / "adapter_config.json").is_file()), None)
    state_dir = next((d for d in (root, ckpt) if d is not None and (d / "trainer_state.json").is_file()), None)
    if adapter_dir is None and state_dir is None:
        raise InitError(
            f"{root}: neither adapter_config.json nor trainer_state.json here or in a checkpoint-*/ folder "
            "(doctor init describes a Trainer/TRL output folder or an adapter folder)"
        )
    acfg: dict[str, Any] = _json(adapter_dir / "adapter_config.json") if adapter_dir else {}
    lora = {k: acfg[k] for k in LORA_FIELDS if acfg.get(k) is not None}
    if isinstance(lora.get("target_modules"), str):
        lora["target_modules"] = [lora["target_modules"]]
    if adapter_dir:
        found.read.append(
            f"{_rel(root, adapter_dir / 'adapter_config.json')}: "
            + ", ".join(f"{k}={_toml_word(v)}" for k, v in lora.items() if k != "target_modules")
            + (f", base {acfg.get('base_model_name_or_path')}" if acfg.get("base_model_name_or_path") else "")
        )
    # The base model: a local folder given (or recorded in adapter_config.json), else the card's name only.
    base_name = acfg.get("base_model_name_or_path")
    for d in (adapter_dir, root):
        if not base_name and d is not None and (d / "README.md").is_file():
            base_name = _card_base_model(d / "README.md")
            if base_name:
                found.read.append(f"{_rel(root, d / 'README.md')}: base_model {base_name}")
    base_dir = base_model
    if base_dir is None and base_name and (Path(base_name).expanduser() / "config.json").is_file():
        base_dir = Path(base_name).expanduser()
    if base_dir is not None and not (Path(base_dir) / "config.json").is_file():
        raise InitError(f"--base-model {base_dir}: no config.json there (a model folder is expected)")
    recipe = _recipe(root, [d for d in (root, ckpt) if d is not None], found)
    if lora:
        recipe["lora"] = lora
    method = method or "lora"  # adapter_config.json does not say whether the base was 4-bit: --method qlora
    if method == "qlora":
        recipe["quantization"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True,
        }
        found.warnings.append("method qlora: quantization recorded as the QLoRA recipe (nf4, bfloat16, double quant)")
    m: dict[str, Any] = {}
    if adapter_dir is not None:
        m["adapters"] = [{"name": adapter_name or root.resolve().name, "version": 1, "path": _rel(root, adapter_dir)}]
    ro: dict[str, Any] = {"name": name or root.resolve().name, "method": method}
    if base_dir is not None:
        ro["base_model"] = _rel(root, Path(base_dir))
    else:
        found.missing.append("base model (--base-model DIR)")
    if base_name:
        ro["base_model_name"] = str(base_name)
    m["rollout"] = ro
    if train_data is not None:
        if not Path(train_data).is_file():
            raise InitError(f"--train-data {train_data}: no such file")
        m["data"] = {"train": _rel(root, Path(train_data))}
    else:
        found.missing.append("training data (--train-data FILE)")
    ev: dict[str, Any] = {}
    for flag, p, key in (("--eval-set", eval_set, "eval_set"), ("--baseline", baseline, "baseline")):
        if p is not None:
            if not Path(p).is_file():
                raise InitError(f"{flag} {p}: no such file")
            ev[key] = _rel(root, Path(p))
    if ev:
        ev.setdefault("baseline_variant", "base")
        m["eval"] = ev
    if state_dir is not None:
        m["training"] = {"log_dir": _rel(root, state_dir)}
        found.read.append(f"{_rel(root, state_dir / 'trainer_state.json')}: the training log")
    if not set(recipe) - {"save_strategy"}:
        found.warnings.append(
            "no training_args.bin / training_args.json: a retrain uses doctor's default TrainingArguments"
        )
    if recipe:
        m["recipe"] = recipe
    found.manifest = m
    return found


def _recipe(root: Path, dirs: list[Path], found: Found) -> dict[str, Any]:
    """TrainingArguments fields from training_args.bin (restricted unpickler) or training_args.json."""
    for d in dirs:
        js = d / "training_args.json"
        if js.is_file():
            fields = _json(js)
            found.read.append(f"{_rel(root, js)}: recipe")
            return _pick(fields)
        binf = d / "training_args.bin"
        if binf.is_file():
            from probes.training.readers.trainingargs import TrainingArgsError, read_training_args

            try:
                fields = read_training_args(binf)
            except TrainingArgsError as exc:
                found.warnings.append(f"{_rel(root, binf)} not used: {exc}")
                continue
            found.read.append(f"{_rel(root, binf)}: recipe (read without unpickling code)")
            return _pick(fields)
    return {}


def _pick(fields: dict[str, Any]) -> dict[str, Any]:
    out = {k: fields[k] for k in sorted(RECIPE_FIELDS) if isinstance(fields.get(k), (int, float, str, bool))}
    if out.get("warmup_steps") == 0 and fields.get("warmup_ratio"):
        out.pop("warmup_steps")
    out["save_strategy"] = "no"  # a corrective job sets its own checkpointing
    out.pop("save_steps", None)
    return out


def write(found: Found, force: bool = False) -> Path:
    from doctor.jobs.compare import dumps_toml

    path = found.root / "rollout.toml"
    if path.exists() and not force:
        raise InitError(f"{path} exists; --force replaces it")
    header = "# Rollout manifest written by `doctor init` from what the folder holds (see docs/jobs.md).\n"
    missing = "".join(f"# missing: {m}\n" for m in found.missing)
    tmp = path.with_name(".rollout.toml.tmp")
    tmp.write_text(header + missing + dumps_toml(found.manifest), encoding="utf-8")
    os.replace(tmp, path)
    return path


def as_json(found: Found, path: Path | None) -> str:
    return json.dumps(
        {
            "manifest": str(path) if path else None,
            "read": found.read,
            "missing": found.missing,
            "warnings": found.warnings,
            "rollout": found.manifest,
        },
        indent=2,
        default=str,
    )


def _toml_word(value: Any) -> str:
    """A value as rollout.toml spells it (true/false, not Python's True/False)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
