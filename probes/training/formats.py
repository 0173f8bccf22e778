"""Which files and folders are training logs and training configs (asked by doctor.core.discovery).

Light on purpose: imported on every `doctor check` start-up, so names and a 16 KiB peek only (no parser).
"""

from __future__ import annotations

import re
from pathlib import Path

from doctor.core.discovery import Classifier, Evidence, FilePeek, FolderPeek

_LOG_NAMES = ("trainer_state.json", "trainer_log.jsonl")  # HF Trainer state, LLaMA-Factory's log
_ARGS_NAMES = ("training_args.json", "training_args.bin")
_TRAIN_CFG_KEYS = re.compile(
    r"^(base_model|model_name_or_path|adapter|finetuning_type|lora_r|lora_rank|learning_rate|"
    r"micro_batch_size|num_epochs|stage|load_in_4bit|quantization_bit)\s*:",
    re.M,
)
_LOSS_COLS = {"loss", "train/loss", "train_loss"}
_STEP_COLS = {"step", "current_steps", "global_step", "_step"}


def classify_by_name(path: Path, peek: FilePeek) -> str | None:
    """Files whose name alone says what they are, whatever their content."""
    name = path.name
    if name in _LOG_NAMES or name.lower().startswith("events.out.tfevents"):
        return "training_log"
    if name in _ARGS_NAMES:
        return "training_config"
    return None


def classify_by_content(path: Path, peek: FilePeek) -> str | None:
    """Generic signatures other formats share, so asked after every stronger one: recipe keys in a YAML
    (Axolotl, LLaMA-Factory), loss and step columns in a table (CSV logger, JSONL)."""
    low = path.name.lower()
    if low.endswith((".yaml", ".yml")):
        return "training_config" if _TRAIN_CFG_KEYS.search(peek.text()) else None
    if low.endswith((".csv", ".tsv", ".jsonl", ".parquet")):
        cols = peek.columns
        return "training_log" if (_LOSS_COLS & cols) and (_STEP_COLS & cols) else None
    return None


def classify_dir(path: Path, peek: FolderPeek) -> str | None:
    """An MLflow store or run, a W&B run folder: read as one unit."""
    if path.name == "mlruns" or ("meta.yaml" in peek.names and "metrics" in peek.names):
        return "training_log"
    if path.name.startswith(("offline-run-", "run-")) and path.parent.name == "wandb":
        return "training_log"
    return None


CLASSIFIERS = (
    Classifier(Evidence.NAME, file=classify_by_name),
    Classifier(Evidence.HINT, file=classify_by_content, folder=classify_dir),
)
