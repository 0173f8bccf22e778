"""Can a job run on this rollout? What is missing, and the `doctor init` line that supplies it.

Used wherever a job is suggested (triage output, the TUI's playbook screen, `doctor fix`): a suggestion to
run a job appears only where one can run; otherwise the suggestion is `doctor init` with the missing
pieces named. Light module: reads rollout.toml, never builds a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import display_path


@dataclass
class Readiness:
    ok: bool
    missing: list[str] = field(default_factory=list)  # what a person supplies, e.g. "base model (--base-model DIR)"
    hint: str = ""  # the command or edit that supplies it


def _flags(missing: list[str]) -> str:
    return " ".join(m[m.index("(") + 1 : m.index(")")] for m in missing if "(" in m)


def init_hint(root: Path | str, missing: list[str] | None = None) -> str:
    miss = missing or ["base model (--base-model DIR)", "training data (--train-data FILE)"]
    return f"make it a rollout first: doctor init {display_path(Path(root))} {_flags(miss)}".rstrip()


def _init_would_miss(root: Path) -> list[str]:
    """The base model unless `doctor init` finds it itself (a local folder named in adapter_config.json)."""
    from doctor.jobs.rollout_init import InitError, discover

    try:
        found = discover(root)
    except (InitError, OSError, ValueError):
        return ["base model (--base-model DIR)"]
    return [m for m in found.missing if m.startswith("base model")]


def job_readiness(root: Path | str, job: dict[str, Any] | None = None) -> Readiness:
    """Whether the job action `job` ({kind: retrain|reeval, ...}) can be built for the rollout at `root`."""
    from doctor.jobs.spec import SpecError, spec_from_action

    root = Path(root)
    kind = (job or {}).get("kind", "retrain")
    manifest = root / "rollout.toml"
    if not manifest.is_file():
        missing = ["rollout.toml", *_init_would_miss(root)]
        if kind == "retrain":
            missing.append("training data (--train-data FILE)")
        else:
            missing.append("eval set (--eval-set FILE)")
        return Readiness(False, missing, init_hint(root, missing))
    try:
        spec_from_action(root, dict(job or {"kind": kind}))
    except SpecError as exc:
        msg = str(exc)
        missing = []
        if "base_model" in msg:
            missing.append("base model (--base-model DIR)")
        if "[data] train" in msg or "data.train" in msg:
            missing.append("training data (--train-data FILE)")
        if "eval_set" in msg:
            missing.append("eval set (--eval-set FILE)")
        if "[recipe]" in msg:
            missing.append("recipe (--training-args FILE)")
        hint = (
            f"fill it in: doctor init {display_path(root)} --force {_flags(missing)}".rstrip()
            if missing
            else f"fix rollout.toml: {msg}"
        )
        return Readiness(False, missing or [msg], hint)
    return Readiness(True)
