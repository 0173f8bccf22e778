"""Core value objects shared by probes, the engine, reporters, playbooks and the TUI.

Nothing here imports anything heavy: this module is on the `doctor check` start-up path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

ARTIFACT_KINDS = (
    "training_log",
    "training_config",
    "adapter",
    "base_model",
    "eval_table",
    "eval_set",
    "serving_config",
    "registry",
    "manifest",
)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]

    @property
    def glyph(self) -> str:
        return {"error": "✗", "warning": "!", "info": "i"}[self.value]

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(value.lower())
        except ValueError:
            raise ValueError(f"unknown severity {value!r} (expected error, warning or info)") from None


def fail_rank(fail_on: str) -> int:
    """Rank at or above which findings fail a run; 'never' fails nothing."""
    if fail_on == "never":
        return 99
    return Severity.parse(fail_on).rank


@dataclass
class Artifact:
    """A file or folder discovered under the target, with a kind and the facts probes learned."""

    path: Path
    kind: str
    facts: dict[str, Any] = field(default_factory=dict)
    # The rollout folder this artifact belongs to (the nearest folder holding a manifest, else the target).
    rollout: Path | None = None

    def to_dict(self, display_path: str) -> dict[str, Any]:
        return {"path": display_path, "kind": self.kind, "facts": self.facts}


@dataclass
class JobAction:
    """A corrective job a finding or a playbook leaf proposes (`retrain` or `reeval`)."""

    kind: str
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "overrides": dict(self.overrides)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Finding:
    rule: str
    severity: Severity
    title: str
    message: str
    path: Path | None
    locator: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    symptoms: tuple[str, ...] = ()
    fix: str = ""
    action: JobAction | None = None
    # Line number for reporters that need one (SARIF region, annotations); 1 when unknown.
    line: int = 1

    def fingerprint(self, display_path: str) -> str:
        """Logical identity: rule + artifact + locator, so baselines survive unrelated edits."""
        return fingerprint_of(self.rule, display_path, self.locator)


def fingerprint_of(rule: str, display_path: str, locator: Any) -> str:
    key = f"{rule}\x00{display_path}\x00{locator}"
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass
class Report:
    targets: list[Path]
    artifacts: list[Artifact]
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)
    # Checks that ran and passed, per artifact path, for `--verbose` console output.
    passed: dict[str, list[str]] = field(default_factory=dict)
    fail_on: str = "error"
    suppressed: int = 0
    # What the scan's probes published for renderers (ScanSession.derived), e.g. "eval_comparisons".
    derived: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    @property
    def exit_code(self) -> int:
        gate = fail_rank(self.fail_on)
        return 1 if any(f.severity.rank >= gate for f in self.findings) else 0


def display_path(path: Path | None, cwd: Path | None = None) -> str:
    """Path relative to the working directory when under it (SARIF needs repo-relative URIs)."""
    if path is None:
        return ""
    cwd = cwd or Path.cwd()
    try:
        return path.resolve().relative_to(cwd.resolve()).as_posix() or "."
    except ValueError:
        return path.as_posix()
