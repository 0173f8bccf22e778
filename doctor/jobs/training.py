"""LoRA / QLoRA training from a recipe (the `[recipe]` tables of rollout.toml) with HF Trainer + peft.

Imported only by worker subprocesses and fixtures/build.py: it imports torch, transformers and peft.

Recipe shape (mirrors the manifest):
    {"learning_rate": 2e-4, "max_steps": 120, ...,        # TrainingArguments fields, as passed
     "lora": {"r": 8, "lora_alpha": 16, ...},              # peft.LoraConfig fields
     "quantization": {"load_in_4bit": True, ...}}          # BitsAndBytesConfig fields (QLoRA only)

Outputs under `output_dir`: `train/` (trainer_state.json, training_args.json, runs/ TensorBoard events,
checkpoint-N/) and `adapter/` (adapter_config.json + adapter_model.safetensors).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.integrations import TensorBoardCallback

from doctor.jobs.data import PadCollator, SFTDataset, read_jsonl, select_examples
from doctor.jobs.evaluation import bnb_config

EventSink = Callable[[dict[str, Any]], None]
# Defaults a recipe may override; they keep runs quiet, local and reproducible.
_DEFAULT_ARGS: dict[str, Any] = {
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": ["tensorboard"],
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
    "seed": 0,
    # Under DDP (torchrun/accelerate) Trainer turns on DDP's unused-parameter search for a PeftModel (it is
    # not a PreTrainedModel): an extra autograd traversal every step, for nothing, since LoRA's forward uses
    # every trainable parameter (DDP warns so); with reentrant gradient checkpointing it is an error.
    "ddp_find_unused_parameters": False,
}


def _finite(x: Any) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


class EventCallback(TrainerCallback):
    """Forwards Trainer progress and logs to `on_event` as JSON-ready dicts (the worker streams them)."""

    def __init__(self, on_event: EventSink) -> None:
        self.emit = on_event

    def on_train_begin(self, args, state, control, **kwargs):
        self.emit({"event": "log", "message": f"training started: max_steps={state.max_steps}"})

    def on_step_end(self, args, state, control, **kwargs):
        self.emit({"event": "progress", "phase": "train", "step": state.global_step, "max_steps": state.max_steps})

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        # NaN/inf are not valid JSON: send them as strings so the stream stays parseable.
        metrics = {k: (v if _finite(v) else str(v)) for k, v in metrics.items()}
        self.emit({"event": "metrics", "step": state.global_step, "max_steps": state.max_steps, **metrics})

    def on_save(self, args, state, control, **kwargs):
        self.emit({"event": "log", "message": f"checkpoint saved at step {state.global_step}"})


def split_recipe(recipe: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(TrainingArguments fields, LoraConfig fields, BitsAndBytesConfig fields or None)."""
    args = {k: v for k, v in recipe.items() if k not in ("lora", "quantization")}
    return args, dict(recipe.get("lora") or {}), (dict(recipe["quantization"]) if recipe.get("quantization") else None)


def build_model(
    base_model: Path,
    lora: dict[str, Any],
    quantization: dict[str, Any] | None,
    *,
    base_model_name: str | None,
    gradient_checkpointing: bool,
) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantization:
        model = AutoModelForCausalLM.from_pretrained(
            base_model, quantization_config=bnb_config(quantization), use_safetensors=True
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_model, use_safetensors=True)  # never unpickle a .bin
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    if base_model_name:
        # Servers and registries name the base, not a local path: record that name in adapter_config.json.
        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = base_model_name
    return model


def first_non_finite_step(log_history: Sequence[dict[str, Any]]) -> int | None:
    """First logged step whose loss or grad_norm is NaN/inf (None when every value is finite)."""
    for entry in log_history:
        if any(not _finite(entry.get(k)) for k in ("loss", "grad_norm") if k in entry):
            return int(entry["step"])
    return None


def train_adapter(
    recipe: dict[str, Any],
    *,
    base_model: Path,
    train_file: Path,
    train_slices: list[str] | None,
    output_dir: Path,
    on_event: EventSink | None = None,
    resume_from_checkpoint: str | bool | None = None,
    mix: dict[str, float] | None = None,
    base_model_name: str | None = None,
    max_length: int = 96,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train a LoRA (or QLoRA when the recipe has `quantization`) adapter; returns a run summary.

    `callbacks` are added to the Trainer's (the lab's budget callback stops a run at its token/time budget).
    """
    emit = on_event or (lambda _e: None)
    arg_fields, lora, quantization = split_recipe(recipe)
    train_dir, adapter_dir = Path(output_dir) / "train", Path(output_dir) / "adapter"
    args = TrainingArguments(
        **{**_DEFAULT_ARGS, **arg_fields, "output_dir": str(train_dir)},
        use_cpu=not torch.cuda.is_available(),
    )
    set_seed(args.seed)  # model init (LoRA A matrices) happens before Trainer seeds
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    rows = select_examples(read_jsonl(train_file), train_slices, mix, seed=args.seed)
    model = build_model(
        base_model,
        lora,
        quantization,
        base_model_name=base_model_name,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=SFTDataset(rows, tokenizer, max_length),
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=[EventCallback(emit), *callbacks],
    )
    _pin_tensorboard_dir(trainer, train_dir / "runs")
    # With tqdm disabled Trainer prints raw log dicts to stdout: the worker's event stream lives there.
    trainer.remove_callback(PrinterCallback)
    emit({"event": "log", "message": f"{len(rows)} training examples, slices={train_slices or 'all'}"})
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_state()
    # Under torchrun/accelerate every rank holds the same weights: one writer, or the files race.
    if trainer.is_world_process_zero():
        (train_dir / "training_args.json").write_text(json.dumps(args.to_dict(), indent=2, default=str) + "\n")
        model.save_pretrained(adapter_dir, safe_serialization=True)
    summary = _summary(trainer, result, adapter_dir, len(rows))
    emit({"event": "result", **{k: v for k, v in summary.items() if k != "log_history"}})
    return summary


def _pin_tensorboard_dir(trainer: Trainer, log_dir: Path) -> None:
    """Events go to train/runs/ (the default adds a date_hostname folder: not reproducible, leaks a host)."""
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(log_dir)


def _summary(trainer: Trainer, result: Any, adapter_dir: Path, n_examples: int) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    return {
        "global_step": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "n_examples": n_examples,
        "final_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss,
        "first_non_finite_step": first_non_finite_step(history),
        "adapter_dir": str(adapter_dir),
        "log_history": history,
    }
