"""Retrain with the user's own training command (TRL's `trl sft`, a script with arguments, …).

A rollout names it in its manifest: `[training] command = ["trl", "sft", "--config", "sft.yaml"]`. The job
applies the recipe changes to a COPY of that config (YAML/JSON) in the job folder, or to the arguments
(`--learning_rate 0.0005`), points the run's output_dir into the job folder, runs the command as the
worker, and then reads its outputs like any run: the adapter it saved and its trainer_state.json.
Worker-side module (runs in the job subprocess; the user's command brings its own training stack).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Recipe field → the name TRL's config/CLI uses for it (TrainingArguments fields keep their names).
TRL_NAMES = {
    "lora.r": "lora_r",
    "lora.lora_alpha": "lora_alpha",
    "lora.lora_dropout": "lora_dropout",
    "lora.target_modules": "lora_target_modules",
    "quantization.load_in_4bit": "load_in_4bit",
    "quantization.load_in_8bit": "load_in_8bit",
    "quantization.bnb_4bit_quant_type": "bnb_4bit_quant_type",
    "quantization.bnb_4bit_use_double_quant": "use_bnb_nested_quant",
}
CONFIG_FLAGS = ("--config", "--config_file", "-c")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md")


def changed_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """{external name: new value} for each recipe field the job changed (source.changes, else overrides)."""
    from doctor.playbook.recipe import locate

    recipe = spec["recipe"]
    keys = list((spec.get("source") or {}).get("changes") or {})
    if not keys:
        keys = []
        for k in spec.get("overrides") or {}:
            section, name = locate(k)
            keys.append(name if section is None else f"{section}.{name}")
    out: dict[str, Any] = {}
    for key in keys:
        if key.startswith("data."):
            continue  # the user's command names its own dataset
        section, _, name = key.rpartition(".")
        table = recipe.get(section, {}) if section else recipe
        if name in table:
            out[TRL_NAMES.get(key, name)] = table[name]
    return out


def _config_index(cmd: list[str]) -> int | None:
    for i, a in enumerate(cmd[:-1]):
        if a in CONFIG_FLAGS:
            return i + 1
    return None


def _set_arg(cmd: list[str], name: str, value: Any) -> list[str]:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    flag = f"--{name}"
    for i, a in enumerate(cmd):
        if a == flag and i + 1 < len(cmd):
            return [*cmd[: i + 1], text, *cmd[i + 2 :]]
        if a.startswith(flag + "="):
            return [*cmd[:i], f"{flag}={text}", *cmd[i + 1 :]]
    return [*cmd, flag, text]


def _write_config(src: Path, dst: Path, values: dict[str, Any]) -> None:
    """A copy of the user's config with `values` set (their file is never touched)."""
    import yaml

    from doctor.core.probe import ReadError
    from probes.common.yamlsafe import load_yaml_text

    text = src.read_text(encoding="utf-8")
    try:  # the user's config, through the capped loader (an alias bomb is refused before it is built)
        data = json.loads(text) if src.suffix == ".json" else (load_yaml_text(text, src) or [None])[0]
    except ReadError as err:
        raise ValueError(f"{src}: {err.reason}" + (f" at {err.where}" if err.where else "")) from None
    if not isinstance(data, dict):
        raise ValueError(f"{src}: the training config is not a mapping")
    data.update(values)
    header = f"# A copy of {src} with doctor's corrective changes: {', '.join(sorted(values))}\n"
    body = json.dumps(data, indent=2) if src.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    dst.write_text(body if src.suffix == ".json" else header + body, encoding="utf-8")


def build_command(spec: dict[str, Any], out: Path) -> tuple[list[str], dict[str, Any]]:
    """(argv to run, the values applied). The run writes into out/train; checkpoints once at its end."""
    trainer = spec["trainer"]
    cwd = Path(trainer.get("cwd") or spec["rollout"])
    cmd = [str(x) for x in trainer["command"]]
    values = changed_fields(spec)
    values["output_dir"] = str(out / "train")
    steps = spec["recipe"].get("max_steps")
    if isinstance(steps, int) and steps > 0:  # a checkpoint at the end: its trainer_state.json is the log
        values.update(save_strategy="steps", save_steps=steps)
    i = _config_index(cmd)
    if i is not None:
        src = Path(cmd[i]) if Path(cmd[i]).is_absolute() else cwd / cmd[i]
        dst = out / f"trainer-config{src.suffix or '.yaml'}"
        out.mkdir(parents=True, exist_ok=True)
        _write_config(src, dst, values)
        cmd[i] = str(dst)
    else:
        for k, v in values.items():
            cmd = _set_arg(cmd, k, v)
    exe = shutil.which(cmd[0]) or (Path(sys.executable).parent / cmd[0])
    if not Path(exe).exists():
        raise FileNotFoundError(f"training command {cmd[0]!r} not found on PATH or beside {sys.executable}")
    return [str(exe), *cmd[1:]], values


def _metrics(line: str) -> dict[str, Any] | None:
    """A Trainer log dict printed by the command ({'loss': '3.7', 'grad_norm': …}) as numbers."""
    start = line.rfind("{'")
    if start < 0:
        return None
    try:
        d = ast.literal_eval(line[start:].strip())
    except (ValueError, SyntaxError):
        return None
    if not isinstance(d, dict) or "loss" not in d:
        return None
    out = {}
    for k, v in d.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def run_command_retrain(spec: dict[str, Any], out: Path, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    cmd, values = build_command(spec, out)
    emit({"event": "log", "message": "training with the rollout's own command: " + " ".join(cmd)})
    emit({"event": "log", "message": "applied: " + ", ".join(f"{k}={v}" for k, v in values.items())})
    steps = spec["recipe"].get("max_steps") or 0
    logging = spec["recipe"].get("logging_steps") or 1
    proc = subprocess.Popen(
        cmd,
        cwd=str(spec["trainer"].get("cwd") or spec["rollout"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    n = 0
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stderr.write(line)  # the worker log keeps the command's own output
            m = _metrics(line)
            if m:
                n += 1
                step = int(n * logging)
                emit({"event": "metrics", "step": step, "max_steps": steps, **m})
                emit({"event": "progress", "phase": "train", "step": step, "max_steps": steps})
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise
    rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"training command exited with code {rc} (its output is in the worker log)")
    train = out / "train"
    if not (train / "adapter_config.json").is_file():
        raise RuntimeError(f"the training command left no adapter in {train} (adapter_config.json)")
    adapter = out / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        if (train / name).is_file():
            shutil.copyfile(train / name, adapter / name)
    return {"summary": _summary(train), "applied": values, "command": cmd}


def _summary(train: Path) -> dict[str, Any]:
    """global_step, final_loss, first_non_finite_step from the newest trainer_state.json."""
    states = sorted(train.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    top = train / "trainer_state.json"
    path = top if top.is_file() else (states[-1] if states else None)
    if path is None:
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    losses = [(h.get("step"), h["loss"]) for h in state.get("log_history", []) if "loss" in h]
    bad = next((s for s, v in losses if not isinstance(v, (int, float)) or v != v or abs(v) == float("inf")), None)
    return {
        "global_step": state.get("global_step"),
        "final_loss": losses[-1][1] if losses else None,
        "first_non_finite_step": bad,
    }
