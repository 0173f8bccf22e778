"""What a probe is and what it gets to look at. Probe families in probes/ subclass `Probe`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.model import Artifact, Finding
from doctor.rules import Rule

if TYPE_CHECKING:
    from doctor.config import Settings


@dataclass
class Rollout:
    """A rollout folder (the nearest folder holding a manifest, else the target) and its artifacts."""

    root: Path
    artifacts: list[Artifact] = field(default_factory=list)
    # Parsed rollout.toml when there is one (the manifest probe fills it in).
    manifest: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == kind]


@dataclass
class ProbeContext:
    settings: Settings
    rollout: Rollout
    # Set by a caller that wants to stop a long scan (the TUI's worker); probes may poll it.
    cancelled: Any = None

    def param(self, rule: Rule, name: str) -> Any:
        """A rule's tunable number: the settings' override, else the rule's default."""
        override = self.settings.thresholds.get(rule.id, {})
        if name in override:
            return override[name]
        return rule.params[name]

    def section(self, name: str) -> dict[str, Any]:
        """A free-form settings table for a probe family ([tool.doctor.eval], …)."""
        value = self.settings.sections.get(name, {})
        return value if isinstance(value, dict) else {}


class Probe:
    """A probe checks artifacts of some kinds and, optionally, a whole rollout at once.

    `check` runs once per artifact of a kind in `kinds` and may record normalized facts in
    `artifact.facts` (shown by `doctor inspect`, used by playbook predicates). `check_rollout` runs
    after every artifact was checked, for rules that need several artifacts (baseline vs candidate,
    serving config vs adapter vs registry).
    """

    name: str = "probe"
    kinds: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = ()

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        return ()

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        return ()


class ReadError(Exception):
    """A reader could not parse a file; the engine turns it into a DOC001 finding.

    `where` names the position (line/column, byte offset, JSON pointer) when known.
    """

    def __init__(self, path: Path, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.where = where
