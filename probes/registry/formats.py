"""Which files are adapter registries (asked by doctor.core.discovery). Light: a 16 KiB peek, no YAML parse."""

from __future__ import annotations

from pathlib import Path

from doctor.core.discovery import Classifier, Evidence, FilePeek


def classify_file(path: Path, peek: FilePeek) -> str | None:
    """A YAML carrying the registry marker, or named registry* with an `adapters:` list."""
    low = path.name.lower()
    if not low.endswith((".yaml", ".yml")):
        return None
    text = peek.text()
    if "peft-doctor/registry" in text or (low.startswith("registry") and "adapters:" in text):
        return "registry"
    return None


# Asked before serving's engine words and training's recipe keys: a registry names engines and base models.
CLASSIFIERS = (Classifier(Evidence.MARKER, file=classify_file),)
