"""Console report: a doctor-style checklist grouped by artifact (flutter doctor / brew doctor style).

Every line carries a glyph (✗ error, ! warning, i info, ✓ clean) so meaning never rests on colour alone;
ANSI colour is added only when `ctx.color`. Plain strings only: no rich import on the start-up path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding, JobAction, Report, display_path

SETTINGS_GROUP = "(settings)"

_RESET = "\x1b[0m"
_COLORS = {
    "error": "\x1b[31m",
    "warning": "\x1b[33m",
    "info": "\x1b[36m",
    "ok": "\x1b[32m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
GLYPHS = {"error": "✗", "warning": "!", "info": "i", "ok": "✓"}


@dataclass
class Group:
    """One checklist entry: an artifact (or the settings) and the findings attributed to it."""

    label: str
    kind: str
    artifact: Artifact | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def worst(self) -> str:
        if not self.findings:
            return "ok"
        return max(self.findings, key=lambda f: f.severity.rank).severity.value


def _owner(path: Path, artifacts: list[tuple[Path, Artifact]]) -> Artifact | None:
    """The artifact that is `path` or the deepest artifact folder containing it."""
    best: Artifact | None = None
    best_len = -1
    for apath, art in artifacts:
        if path == apath or apath in path.parents:
            n = len(apath.parts)
            if n > best_len:
                best, best_len = art, n
    return best


def group_findings(report: Report, cwd: Path) -> list[Group]:
    """Artifacts in discovery order (each with its findings), then findings outside any artifact.

    Findings without a path (settings, config) land in a final "(settings)" group.
    """
    resolved = [(_resolve(a.path), a) for a in report.artifacts]
    groups: dict[str, Group] = {}
    for a in report.artifacts:
        label = display_path(a.path, cwd)
        groups.setdefault(label, Group(label, a.kind, a))
    extra: dict[str, Group] = {}
    settings = Group(SETTINGS_GROUP, "settings")
    for f in report.findings:
        if f.path is None:
            settings.findings.append(f)
            continue
        owner = _owner(_resolve(f.path), resolved)
        if owner is not None:
            groups[display_path(owner.path, cwd)].findings.append(f)
        else:
            label = display_path(f.path, cwd)
            kind = "folder" if f.path.is_dir() else "file" if f.path.exists() else "path"
            extra.setdefault(label, Group(label, kind)).findings.append(f)
    out = list(groups.values()) + list(extra.values())
    if settings.findings:
        out.append(settings)
    for g in out:
        g.findings.sort(key=lambda f: (-f.severity.rank, f.rule, f.locator))
    return out


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def action_command(action: JobAction, target: Path | None = None, cwd: Path | None = None) -> str:
    """The exact command that launches the corrective job a finding proposes.

    Uses only the documented CLI (`doctor triage PATH` then `doctor jobs run --from-triage`).
    """
    where = _shell_quote(display_path(target, cwd)) if target is not None else "."
    return f"doctor triage {where} && doctor jobs run --from-triage"


def action_text(action: JobAction) -> str:
    """One line describing the job: kind plus overrides, e.g. `retrain (learning_rate: x0.5)`."""
    parts = ", ".join(f"{k}: {_fmt_value(v)}" for k, v in action.overrides.items())
    text = action.kind + (f" ({parts})" if parts else "")
    return text + (f" — {action.note}" if action.note else "")


def _fmt_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def _shell_quote(s: str) -> str:
    if s and all(c.isalnum() or c in "@%+=:,./-_" for c in s):
        return s
    return "'" + s.replace("'", "'\"'\"'") + "'"


def plural(n: int, word: str) -> str:
    if word == "info":
        return f"{n} info"
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(report: Report) -> str:
    c = report.counts()
    n_art = len(report.artifacts)
    if not report.findings:
        tail = f", {report.suppressed} suppressed" if report.suppressed else ""
        return f"No issues found! ({plural(n_art, 'artifact')} checked{tail})"
    return (
        f"Doctor found {plural(c['error'], 'error')}, {plural(c['warning'], 'warning')}, {plural(c['info'], 'info')} "
        f"in {plural(n_art, 'artifact')} ({report.suppressed} suppressed)"
    )


def _evidence_text(evidence: dict[str, Any], cwd: Path, limit: int = 200) -> str:
    from doctor.render.json_report import jsonable

    text = json.dumps(jsonable(evidence, cwd), ensure_ascii=False, allow_nan=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def passed_probes(report: Report, group: Group) -> list[str]:
    """Probe names that checked this group's artifact and found nothing (report.passed is keyed by path)."""
    if group.artifact is None:
        return []
    keys = {str(group.artifact.path), group.artifact.path.as_posix(), group.label}
    out: list[str] = []
    for key in keys:
        for name in report.passed.get(key, []):
            if name not in out:
                out.append(name)
    return out


def render(report: Report, ctx: Any) -> str:
    color = bool(ctx.color)

    def paint(text: str, style: str) -> str:
        return f"{_COLORS[style]}{text}{_RESET}" if color else text

    def glyph(sev: str) -> str:
        return paint(GLYPHS[sev], sev)

    lines: list[str] = []
    version = f" {ctx.version}" if ctx.version else ""
    lines.append(paint(f"peft-doctor{version}", "bold") + f" — {plural(len(report.artifacts), 'artifact')} checked")
    lines.append("")
    for g in group_findings(report, ctx.cwd):
        passed = passed_probes(report, g)
        kind = f" ({g.kind})" if g.label != SETTINGS_GROUP else ""
        lines.append(f"[{glyph(g.worst)}] {paint(g.label, 'bold')}{kind}")
        for f in g.findings:
            sev = f.severity.value
            lines.append(f"    {glyph(sev)} {f.rule} {f.title}")
            for msg_line in (f.message or "").splitlines() or [""]:
                lines.append(f"        {msg_line}")
            if f.path is not None and display_path(f.path, ctx.cwd) != g.label:
                lines.append(paint(f"        in {display_path(f.path, ctx.cwd)}", "dim"))
            if f.locator:
                lines.append(paint(f"        at {f.locator}", "dim"))
            if f.fix:
                lines.append(f"        Advice: {f.fix}")
            if f.action is not None:
                target = (g.artifact.rollout or g.artifact.path) if g.artifact is not None else f.path
                lines.append(
                    f"        Advice: {action_text(f.action)}: run `{action_command(f.action, target, ctx.cwd)}`"
                )
            if ctx.verbose and f.evidence:
                lines.append(paint(f"        evidence: {_evidence_text(f.evidence, ctx.cwd)}", "dim"))
        if ctx.verbose:
            for name in passed:
                lines.append(f"    {glyph('ok')} {name}")
            if g.artifact is not None and not passed and not g.findings:
                lines.append(paint("    (no probe applies to this kind)", "dim"))
    if ctx.verbose and report.timings:
        total = report.timings.get("total")
        if isinstance(total, (int, float)):
            lines.append("")
            lines.append(paint(f"Checked in {total:.2f}s", "dim"))
    lines.append("")
    summary = summary_line(report)
    worst = "ok" if not report.findings else max(report.findings, key=lambda f: f.severity.rank).severity.value
    lines.append(paint(summary, worst) if color else summary)
    return "\n".join(lines) + "\n"
