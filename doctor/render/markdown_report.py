"""Markdown report (`--format markdown`, and the GitHub step summary).

`sections(report, ctx)` returns the base sections as Markdown strings; `render` joins them. Probe families
that want extra sections can be appended to that list later without touching the base layout.
"""

from __future__ import annotations

from typing import Any

from doctor.core.model import Finding, Report, Severity, display_path
from doctor.render.console_report import SETTINGS_GROUP, action_command, action_text, group_findings, summary_line

GLYPH = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no raw HTML."""
    return _html(text).replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def code(text: str) -> str:
    """Inline code that survives backticks inside the text."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _artifact_label(f: Finding, ctx: Any) -> str:
    return display_path(f.path, ctx.cwd) or SETTINGS_GROUP


def heading(report: Report, ctx: Any) -> str:
    version = f" {ctx.version}" if ctx.version else ""
    status = "✗ failed" if report.exit_code else "✓ passed"
    gate = f"exit code {report.exit_code}, fail on `{report.fail_on}`"
    return f"# peft-doctor{version} report\n\n**{status}** ({gate}) — {cell(summary_line(report))}"


def summary_table(report: Report, ctx: Any) -> str:
    c = report.counts()
    rows = [
        "## Summary",
        "",
        "| Severity | Count |",
        "| --- | ---: |",
        f"| ✗ error | {c['error']} |",
        f"| ! warning | {c['warning']} |",
        f"| i info | {c['info']} |",
        f"| suppressed | {report.suppressed} |",
        f"| artifacts checked | {len(report.artifacts)} |",
    ]
    return "\n".join(rows)


def findings_table(report: Report, ctx: Any) -> str:
    if not report.findings:
        return "## Findings\n\nNo issues found!"
    rows = ["## Findings", "", "| | Rule | Artifact | Locator | Message |", "| :---: | --- | --- | --- | --- |"]
    for g in group_findings(report, ctx.cwd):
        for f in g.findings:
            rows.append(
                f"| {GLYPH[f.severity]} {f.severity.value} | {f.rule} | {cell(_artifact_label(f, ctx))} "
                f"| {cell(f.locator)} | {cell(f.message)} |"
            )
    return "\n".join(rows)


def details(report: Report, ctx: Any) -> str:
    if not report.findings:
        return ""
    parts = ["## Details"]
    for g in group_findings(report, ctx.cwd):
        for f in g.findings:
            where = code(_artifact_label(f, ctx))
            if f.locator:
                where += f" · {cell(f.locator)}"
            block = [f"### {GLYPH[f.severity]} {f.rule} — {_html(f.title)}", "", where, "", _html(f.message)]
            if f.fix:
                block += ["", f"**Advice:** {_html(f.fix)}"]
            if f.action is not None:
                target = (g.artifact.rollout or g.artifact.path) if g.artifact is not None else f.path
                block += [
                    "",
                    f"**Action:** {_html(action_text(f.action))}: {code(action_command(f.action, target, ctx.cwd))}",
                ]
            if f.symptoms:
                block += ["", "Symptoms: " + ", ".join(code(s) for s in f.symptoms)]
            parts.append("\n".join(block))
    return "\n\n".join(parts)


def eval_comparison(report: Report, ctx: Any) -> str:
    """Every candidate vs baseline, per slice with intervals (the comparisons the scan published)."""
    from probes.eval_slices import comparison_table, to_markdown

    rows = comparison_table(report)
    if not rows:
        return ""

    return "## Eval comparison\n\n" + to_markdown(rows)


def sections(report: Report, ctx: Any) -> list[str]:
    """The sections, in order; empty strings are dropped."""
    return [
        heading(report, ctx),
        summary_table(report, ctx),
        findings_table(report, ctx),
        eval_comparison(report, ctx),
        details(report, ctx),
    ]


def render(report: Report, ctx: Any) -> str:
    return "\n\n".join(s for s in sections(report, ctx) if s) + "\n"
