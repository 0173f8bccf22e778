"""Reporters: one module per output format, each exposing `render(report, ctx) -> str`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from doctor.core.model import Report
from doctor.core.rules import RuleRegistry

FORMATS = ("console", "json", "sarif", "junit", "gitlab", "github", "markdown")


@dataclass
class RenderContext:
    rules: RuleRegistry
    cwd: Path = field(default_factory=Path.cwd)
    verbose: bool = False
    color: bool = False
    version: str = ""
    # The settings file, where findings without an artifact path (config problems) point.
    settings_path: Path | None = None


def render(report: Report, fmt: str, ctx: RenderContext) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    from doctor.render.escape import for_format
    from doctor.render.redact import redact_report

    module = importlib.import_module(f"doctor.render.{fmt}_report")
    # Centrally, so no format can forget: secrets blanked, non-UTF-8 names in the format's convention.
    return for_format(fmt, module.render(redact_report(report), ctx))
