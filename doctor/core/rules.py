"""The rule registry: every finding doctor can raise has a stable id registered here once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, JobAction, Severity

# Symptom vocabulary from DESIGN.md. Playbooks and CI gates branch on these: add, never rename.
SYMPTOMS = frozenset(
    {
        # training
        "non_finite",
        "loss_spike",
        "divergence",
        "grad_explosion",
        "not_learning",
        "overfitting",
        "lr_too_high",
        "lr_schedule",
        "precision_risk",
        "quantization_config",
        "run_too_short",
        # adapter
        "adapter_unreadable",
        "adapter_non_finite",
        "dead_adapter",
        "rank_underused",
        "base_mismatch",
        "target_module_missing",
        "scaling_mismatch",
        "unsafe_format",
        # eval
        "slice_regression",
        "safety_regression",
        "narrow_coverage",
        "baseline_missing",
        "insufficient_samples",
        # serving
        "runtime_incompatible",
        "rank_exceeds_limit",
        "quantization_incompatible",
        "routing_error",
        "version_drift",
        "rollback_missing",
        # the doctor itself
        "input_unreadable",
    }
)

_ID = re.compile(r"^(TRN|CFG|ADP|EVL|SRV|REG|DOC)\d{3}$")


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: Severity
    symptoms: tuple[str, ...]
    explanation: str
    fix: str
    # Tunable numbers with their defaults; settings override them per rule ([tool.doctor.thresholds.ID]).
    params: dict[str, Any] = field(default_factory=dict)
    # Behaviour flags other modules branch on instead of keeping lists of rule ids (family-defined words,
    # e.g. training's "live": `doctor watch` raises it while a run is still writing its log).
    flags: frozenset[str] = frozenset()

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def finding(
        self,
        path: Path | None,
        message: str,
        *,
        locator: str = "",
        evidence: dict[str, Any] | None = None,
        severity: Severity | None = None,
        fix: str | None = None,
        action: JobAction | None = None,
        line: int = 1,
    ) -> Finding:
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            title=self.title,
            message=message,
            path=path,
            locator=locator,
            evidence=evidence or {},
            symptoms=self.symptoms,
            fix=self.fix if fix is None else fix,
            action=action,
            line=line,
        )


class RuleRegistry:
    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def add(self, rule: Rule) -> Rule:
        if not _ID.match(rule.id):
            raise ValueError(f"rule id {rule.id!r} does not match PREFIX + 3 digits")
        if rule.id in self._rules:
            raise ValueError(f"duplicate rule id {rule.id}")
        unknown = set(rule.symptoms) - SYMPTOMS
        if unknown:
            raise ValueError(f"rule {rule.id} uses unknown symptoms {sorted(unknown)}")
        self._rules[rule.id] = rule
        return rule

    def extend(self, rules: Iterable[Rule]) -> None:
        for r in rules:
            self.add(r)

    def get(self, rule_id: str) -> Rule:
        try:
            return self._rules[rule_id.upper()]
        except KeyError:
            raise KeyError(f"unknown rule {rule_id!r}") from None

    def __contains__(self, rule_id: object) -> bool:
        return isinstance(rule_id, str) and rule_id.upper() in self._rules

    def __iter__(self):
        return iter(sorted(self._rules.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self._rules)


def rule(
    id: str,
    title: str,
    severity: str,
    symptoms: Iterable[str],
    explanation: str,
    fix: str,
    *,
    flags: Iterable[str] = (),
    **params: Any,
) -> Rule:
    """Compact constructor used by probe modules' rule tables."""
    return Rule(
        id, title, Severity.parse(severity), tuple(symptoms), _prose(explanation), _prose(fix), params, frozenset(flags)
    )


def _prose(text: str) -> str:
    """Rule texts are written as indented triple-quoted paragraphs; reflow them to one line each."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


# The doctor's own rules: problems with the input or with a probe, never hidden.
DOC_UNREADABLE = rule(
    "DOC001",
    "Input file could not be read",
    "error",
    ["input_unreadable"],
    "A file doctor recognised could not be parsed. Its contents were not analysed, so a gate that "
    "passed would be passing blind.",
    "Fix or regenerate the file; the message names the position of the problem.",
)
DOC_PROBE_CRASHED = rule(
    "DOC002",
    "A probe failed on this input",
    "error",
    ["input_unreadable"],
    "A probe raised an unexpected error on this artifact. The rest of the run went on, but this "
    "artifact was not fully checked.",
    "Report the message with the file to the peft-doctor maintainers; meanwhile check the file by hand.",
)
DOC_NOTHING_FOUND = rule(
    "DOC003",
    "Nothing doctor knows was found",
    "error",
    [],
    "The target holds no training log, adapter, eval table, serving config, registry or manifest. "
    "A CI gate pointed at the wrong path must not pass silently.",
    "Point `doctor check` at the rollout folder, or run `doctor inspect PATH` to see what doctor sees.",
)
DOC_UNSAFE_PICKLE = rule(
    "DOC004",
    "Pickle file not loaded",
    "info",
    ["unsafe_format"],
    "This file is a Python pickle (training_args.bin, adapter_model.bin, *.pt). Unpickling runs "
    "arbitrary code, so doctor never loads it.",
    "Save the same data as JSON or safetensors (e.g. `model.save_pretrained(dir, safe_serialization=True)`).",
)
DOC_SUPPRESSION_EXPIRED = rule(
    "DOC005",
    "Ignore entry has expired",
    "warning",
    [],
    "An ignore entry in the settings has passed its `expires` date, so the findings it matched are reported again.",
    "Fix the underlying problem, or renew the ignore with a new reason and date.",
)

DOC_OUTSIDE_TARGET = rule(
    "DOC010",
    "Path outside the target not followed",
    "warning",
    [],
    "An input file names a path outside the rollout that the rollout manifest does not declare (an "
    "adapter's base_model_name_or_path, a registry entry, a launch file's path). doctor does not read "
    "files from elsewhere on the machine by default: on untrusted content in CI a report must never "
    "carry them. What the path points to was not checked.",
    "Keep the file inside the rollout, declare it in rollout.toml (e.g. [rollout] base_model), or allow "
    "outside paths with `[paths] allow_outside = true` in the settings.",
)

DOC_RULES = (
    DOC_UNREADABLE,
    DOC_PROBE_CRASHED,
    DOC_NOTHING_FOUND,
    DOC_UNSAFE_PICKLE,
    DOC_SUPPRESSION_EXPIRED,
    DOC_OUTSIDE_TARGET,
)
