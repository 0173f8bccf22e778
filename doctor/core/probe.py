"""What a probe is and what it gets to look at. Probe families in probes/ subclass `Probe`."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import Artifact, Finding
from doctor.core.rules import Rule
from doctor.core.session import ScanSession

if TYPE_CHECKING:
    from doctor.core.settings import Settings


@dataclass
class Rollout:
    """A rollout folder (the nearest folder holding a manifest, else the target) and its artifacts."""

    root: Path
    artifacts: list[Artifact] = field(default_factory=list)
    # Parsed rollout.toml when there is one (the engine fills it in before any probe runs).
    manifest: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == kind]


@dataclass
class ProbeContext:
    settings: Settings
    rollout: Rollout
    # The scan this rollout is part of: per-scan memo, deferred DOC findings, cancellation.
    session: ScanSession = field(default_factory=ScanSession)
    # Per-rollout scratch space for probes that fold findings of several artifacts into one.
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def cancelled(self) -> Any:
        """The scan's cancel event (an object with is_set()) or None; probes may poll it."""
        return self.session.cancelled

    def unreadable(
        self,
        path: Path,
        reason: str,
        where: str = "",
        evidence: dict[str, Any] | None = None,
        *,
        locator: str | None = None,
    ) -> None:
        """A part of `path` could not be read but the reader went on (skipped lines): DOC001 with the position
        (`locator`: the finding's locator only, for a reason that already says where)."""
        from doctor.core.checks import unreadable_finding

        self.session.defer(unreadable_finding(path, reason, where, evidence, locator=locator))

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


class LazyProbe(Probe):
    """A probe whose implementation is imported on first use, keeping numpy, YAML parsers and the like
    off the start-up path of `doctor check` for families the target does not need.

    `target` is "module:Class". `rollout_kinds`: the artifact kinds without which the probe's
    rollout-level check has nothing to do (it is then skipped without importing anything).
    """

    def __init__(self, name: str, kinds: set[str], target: str, rollout_kinds: set[str] = frozenset()) -> None:
        self.name = name
        self.kinds = frozenset(kinds)
        self.rollout_kinds = frozenset(rollout_kinds)
        self._target = target
        self._impl: Probe | None = None

    @property
    def impl(self) -> Probe:
        if self._impl is None:
            module, _, cls = self._target.partition(":")
            self._impl = getattr(importlib.import_module(module), cls)()
        return self._impl

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        return self.impl.check(artifact, ctx)

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        if not any(a.kind in self.rollout_kinds for a in rollout.artifacts):
            return ()
        return self.impl.check_rollout(rollout, ctx)


def lazy_attr(package: str, names: dict[str, str], attr: str) -> Any:
    """Module `__getattr__` helper: `names` maps a public name to the submodule that defines it (a bare
    name is a submodule of `package`; a dotted one is a module path, e.g. a re-export from probes.common)."""
    if attr not in names:
        raise AttributeError(f"module {package!r} has no attribute {attr!r}")
    module = names[attr]
    return getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), attr)


class ReadError(Exception):
    """A reader could not parse a file; the engine turns it into a DOC001 finding.

    `where` names the position (line/column, byte offset, JSON pointer) when known.
    """

    def __init__(self, path: Path, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.where = where
