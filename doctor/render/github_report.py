"""GitHub Actions workflow commands: one annotation per finding plus a plain log line for each.

GitHub shows only ~10 errors and 10 warnings a step as annotations, so every finding is also printed as a
log line. Escaping follows @actions/core (toolkit `command.ts`): escapeData encodes % CR LF; escapeProperty
also encodes : and ,. When $GITHUB_STEP_SUMMARY is set, the Markdown report is appended to that file
(at most 1 MiB a step; longer reports are truncated with a note).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, Report, Severity, display_path
from doctor.render import markdown_report
from doctor.render.console_report import summary_line

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
STEP_SUMMARY_LIMIT = 1024 * 1024
TRUNCATION_NOTE = (
    "\n\n> **Note:** this summary was truncated to fit GitHub's 1 MiB step-summary limit; "
    "run `doctor check --format markdown` for the full report.\n"
)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(f: Finding, ctx: Any) -> str:
    props: list[tuple[str, str]] = []
    shown = display_path(f.path, ctx.cwd)
    if shown:
        props.append(("file", shown))
        props.append(("line", str(max(1, int(f.line or 1)))))
    props.append(("title", f"{f.rule} {f.title}"))
    message = f.message or f.title
    if f.locator:
        message += f" (at {f.locator})"
    if f.fix:
        message += f"\nAdvice: {f.fix}"
    prop_text = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    return f"::{COMMANDS[f.severity]} {prop_text}::{escape_data(message)}"


def log_line(f: Finding, ctx: Any) -> str:
    shown = display_path(f.path, ctx.cwd) or "(settings)"
    where = f"{shown}:{max(1, int(f.line or 1))}" if f.path is not None else shown
    loc = f" [{f.locator}]" if f.locator else ""
    # One physical line: a stray "::" at the start of a log line could be read as a workflow command.
    text = f"{where}: {f.severity.value} {f.rule} {f.title}{loc}: {f.message}".replace("\r", " ").replace("\n", " ")
    return text


def write_step_summary(markdown: str, target: str | os.PathLike[str]) -> bool:
    """Append `markdown` to the step-summary file, keeping the file within GitHub's 1 MiB limit."""
    path = Path(target)
    try:
        used = path.stat().st_size if path.exists() else 0
    except OSError:
        used = 0
    budget = max(0, STEP_SUMMARY_LIMIT - used)
    data = markdown.encode("utf-8")
    if len(data) > budget:
        note = TRUNCATION_NOTE.encode("utf-8")
        keep = max(0, budget - len(note))
        data = data[:keep].decode("utf-8", "ignore").encode("utf-8") + (note if budget >= len(note) else b"")
    try:
        with path.open("ab") as fh:
            fh.write(data)
    except OSError:
        return False
    return True


def render(report: Report, ctx: Any) -> str:
    lines: list[str] = []
    for f in report.findings:
        lines.append(log_line(f, ctx))
    for f in report.findings:
        lines.append(annotation(f, ctx))
    lines.append(summary_line(report))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file and not write_step_summary(markdown_report.render(report, ctx), summary_file):
        lines.append(f"::warning::{escape_data(f'could not write the step summary to {summary_file}')}")
    return "\n".join(lines) + "\n"
