"""Which folders are PEFT adapters and base models (asked by doctor.core.discovery).

The base model is the adapter family's format: a base folder is found to check adapters against it (the
shared PEFT kit in probes/common/peft reads the `base_model` artifacts for adapter and serving checks).
Light on purpose: imported on every `doctor check` start-up.
"""

from __future__ import annotations

from pathlib import Path

from doctor.core.discovery import Classifier, Evidence, FilePeek, FolderPeek, PartOf
from doctor.core.safeio import loads_json, read_text_capped

_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_BASE_WEIGHTS = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}


def classify_file(path: Path, peek: FilePeek) -> PartOf | None:
    """An adapter's own files are read with their folder, never as artifacts of their own."""
    return PartOf("adapter") if path.name in _ADAPTER_FILES else None


def classify_adapter_dir(path: Path, peek: FolderPeek) -> str | None:
    return "adapter" if any(n in peek.names for n in _ADAPTER_FILES) else None


def classify_base_dir(path: Path, peek: FolderPeek) -> str | None:
    """A transformers model folder: config.json with `architectures` next to its weights."""
    if "config.json" not in peek.names or not (_BASE_WEIGHTS & peek.names):
        return None
    try:
        cfg = loads_json(read_text_capped(path / "config.json", 1_000_000))
    except (OSError, ValueError):
        return "base_model"
    return "base_model" if isinstance(cfg, dict) and "architectures" in cfg else None


CLASSIFIERS = (
    Classifier(Evidence.NAME, file=classify_file, folder=classify_adapter_dir),
    Classifier(Evidence.SIGNATURE, folder=classify_base_dir),
)
