"""GitLab Code Quality report: a JSON array (no BOM) of CodeClimate-style issues.

severity: error → critical, warning → major, info → info. `fingerprint` is the finding's logical identity
(rule + artifact + locator); should two findings share it, later ones get a numbered suffix so the array
still holds unique fingerprints (GitLab drops duplicates).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from doctor.core.model import Report, Severity, display_path

SEVERITIES = {Severity.ERROR: "critical", Severity.WARNING: "major", Severity.INFO: "info"}


def issues(report: Report, ctx: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for f in report.findings:
        shown = display_path(f.path, ctx.cwd)
        fp = f.fingerprint(shown)
        n = 1
        while fp in seen:
            n += 1
            fp = hashlib.sha256(f"{f.fingerprint(shown)}\x00{n}".encode()).hexdigest()[:32]
        seen.add(fp)
        description = f"{f.rule} {f.title}: {f.message}" if f.message else f"{f.rule} {f.title}"
        if f.locator:
            description += f" (at {f.locator})"
        issue: dict[str, Any] = {
            "type": "issue",
            "description": description,
            "check_name": f.rule,
            "fingerprint": fp,
            "severity": SEVERITIES[f.severity],
            "location": {"path": shown or ".", "lines": {"begin": max(1, int(f.line or 1))}},
        }
        if f.fix:
            issue["content"] = {"body": f.fix}
        out.append(issue)
    return out


def render(report: Report, ctx: Any) -> str:
    return json.dumps(issues(report, ctx), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
