"""`doctor triage`: check a rollout, then walk the playbooks over its findings to a ranked diagnosis.

The diagnosis only: what a triage says about jobs (can its job action run here, which fixes were tried) and
its outputs (JSON, console, Markdown) are in doctor/render/triage.py, above the job floor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doctor.core.model import Report, display_path
from doctor.core.settings import Settings
from doctor.engine import check, group_rollouts
from doctor.playbook.tree import Evidence, Triage, Walker, load_all
from probes.common.paths import within


@dataclass
class RolloutTriage:
    root: Path
    triage: Triage
    evidence: Evidence


def evidence_by_rollout(report: Report) -> list[tuple[Path, Evidence]]:
    """One evidence set per rollout folder (findings are assigned by path)."""
    default = report.targets[0].resolve() if report.targets else Path.cwd()
    rollouts = group_rollouts(report.artifacts, default if default.is_dir() else default.parent)
    out: list[tuple[Path, Evidence]] = []
    for r in sorted(rollouts, key=lambda r: str(r.root)):
        findings = [f for f in report.findings if f.path is not None and within(f.path, r.root)]
        manifest = next((a.facts for a in r.artifacts if a.kind == "manifest"), {})
        out.append((r.root, Evidence(findings, r.artifacts, manifest)))
    if not out:  # nothing discovered: triage the bare findings (DOC003 …)
        out.append((default, Evidence(list(report.findings), [], {})))
    return out


def run_triage(
    targets: list[Path],
    settings: Settings,
    answers: dict[str, str] | None = None,
    entry: str = "triage",
    interactive: bool = False,
    report: Report | None = None,
) -> list[RolloutTriage]:
    from probes import rule_registry

    books = load_all(rule_ids={r.id for r in rule_registry()})
    report = report or check(targets, settings)
    walker = Walker(books)
    walker.check_answers(entry, answers or {})
    return [
        RolloutTriage(root, walker.walk(ev, entry, answers, interactive) if ev.artifacts else nothing_found(root), ev)
        for root, ev in evidence_by_rollout(report)
    ]


def nothing_found(root: Path) -> Triage:
    """No artifacts: there is no evidence to walk, so no verdict either way (never "no regression")."""
    return Triage(
        path=[],
        leaves=[],
        causes=[],
        actions=[
            {"kind": "command", "text": f"doctor inspect {display_path(root)}   # see what doctor recognises"},
        ],
        diagnosis=(
            f"Nothing to triage: no training log, adapter, eval table, serving config, registry or manifest "
            f"was found under {display_path(root)} (DOC003). Point triage at the rollout folder."
        ),
    )
