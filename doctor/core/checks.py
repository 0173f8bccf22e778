"""One check per rule, registered beside the logic that raises it (the way ruff and checkov do it).

Each probe family keeps one `CheckSet` in its rules.py. A check is a function registered with exactly one
rule and a scope:

    @CHECKS(SRV014, scope="rollout")
    def lora_disabled(subject, ctx): ...

- "artifact": run once per artifact of the family's kinds, on what the family's probe prepared from it
  (a parsed config, an adapter scan, a loaded table).
- "rollout": run once per rollout, after every artifact was checked (baseline vs candidate, serving
  config vs adapter vs registry).
- "scan": the doctor's own DOC rules, raised by the engine (see DOC_CHECKS below).

A check may only raise findings of its own rule (`run` refuses anything else, so a rule's logic cannot
drift into another rule's function), and a rule id may have only one check (`doctor rules` lists what the
checks raise: tests/test_architecture.py asserts every rule has exactly one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from doctor.core.model import Finding
from doctor.core.rules import DOC_RULES, DOC_UNREADABLE, Rule

# "scan": a check the engine runs itself (the DOC rules), not one a family runs on a subject.
Scope = Literal["artifact", "rollout", "scan"]
SCOPES: tuple[Scope, ...] = ("artifact", "rollout", "scan")
CheckFn = Callable[..., Iterable[Finding]]


class CheckError(Exception):
    """A check broke the one-rule contract (a programming error, reported as DOC002 by the engine)."""


@dataclass(frozen=True)
class Check:
    rule: Rule
    scope: Scope
    fn: CheckFn
    # Every scope the check runs in (its first is `scope`): a rule whose cases arise in both phases — a
    # path written in a config that cannot be followed, met when the config is read or when the rollout's
    # adapters are resolved — keeps one check registered for ("artifact", "rollout").
    scopes: tuple[Scope, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def runs_in(self, scope: Scope) -> bool:
        return scope in (self.scopes or (self.scope,))


class CheckSet:
    """The checks of one probe family, keyed by rule id, in registration order."""

    def __init__(self, family: str, rules: Iterable[Rule]) -> None:
        self.family = family
        self.rules = {r.id: r for r in rules}
        self._checks: dict[str, Check] = {}

    def __call__(self, rule: Rule, scope: Scope | tuple[Scope, ...] = "artifact") -> Callable[[CheckFn], CheckFn]:
        scopes: tuple[Scope, ...] = (scope,) if isinstance(scope, str) else tuple(scope)
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"check scope {scope!r} is not one of {SCOPES}")
        if rule.id not in self.rules:
            raise ValueError(f"{rule.id} is not a {self.family} rule")

        def register(fn: CheckFn) -> CheckFn:
            if rule.id in self._checks:
                raise ValueError(f"{rule.id} already has a check: {self._checks[rule.id].where}")
            self._checks[rule.id] = Check(rule, scopes[0], fn, scopes)
            return fn

        return register

    def __iter__(self) -> Iterator[Check]:
        return iter(self._checks.values())

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._checks

    def get(self, rule_id: str) -> Check | None:
        return self._checks.get(rule_id)

    def missing(self) -> list[str]:
        """Rule ids of this family that no check raises."""
        return sorted(set(self.rules) - set(self._checks))

    def run(
        self, scope: Scope, *args: Any, applies: Callable[[Rule], bool] | None = None, **kwargs: Any
    ) -> list[Finding]:
        """Run every check of `scope` (those `applies` accepts) on the same arguments."""
        out: list[Finding] = []
        for check in self._checks.values():
            if not check.runs_in(scope) or (applies is not None and not applies(check.rule)):
                continue
            for f in check.fn(*args, **kwargs):
                if f.rule != check.rule.id:
                    raise CheckError(f"the {check.rule.id} check {check.where} raised a {f.rule} finding")
                out.append(f)
        return out


# The doctor's own rules. Their checks are run by the engine itself (scope "scan"): a file that could not be
# read, a probe that crashed, nothing found, an expired ignore, and — reported by a family through its
# context, drained by the engine after each probe call — a path outside the target that was not followed.
DOC_CHECKS = CheckSet("doctor", DOC_RULES)


@DOC_CHECKS(DOC_UNREADABLE, scope="scan")
def unreadable_finding(
    path: Path, reason: str, where: str = "", evidence: dict[str, Any] | None = None, *, locator: str | None = None
) -> Finding:
    """DOC001 naming the file, the problem and its position (line/column, byte offset, JSON pointer).
    `locator`: a position for the finding's locator only, when `reason` already says where."""
    shown = f" at {where}" if where else ""
    return DOC_UNREADABLE.finding(
        path,
        f"{path.name}: {reason}{shown}",
        locator=where if locator is None else locator,
        evidence={"reason": reason, **(evidence or {})},
    )
