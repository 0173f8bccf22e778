"""JSON report (`--format json`): the stable schema from DESIGN.md, strict JSON only.

Strictness: non-finite floats anywhere (evidence, facts, timings) become the strings "NaN", "Infinity" and
"-Infinity"; paths become display strings; numpy scalars and arrays become plain Python values (found by
duck typing, so numpy is never imported here).
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import PurePath
from typing import Any

from doctor.core.model import Finding, Report, display_path

SCHEMA = "peft-doctor/report/1"
TOOL_NAME = "peft-doctor"


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def jsonable(value: Any, cwd: Any = None) -> Any:
    """A deep copy of `value` that `json.dumps(..., allow_nan=False)` accepts."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Enum):
        return jsonable(value.value, cwd)
    if isinstance(value, PurePath):
        return display_path(value, cwd) if cwd is not None else value.as_posix()
    if isinstance(value, dict):
        return {str(jsonable(k, cwd)): jsonable(v, cwd) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, cwd) for v in items]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict(), cwd)
    # numpy scalars (np.float32, np.int64, np.bool_) and arrays: .tolist() gives plain Python values.
    if hasattr(value, "tolist") and callable(value.tolist):
        try:
            return jsonable(value.tolist(), cwd)
        except Exception:  # a broken tolist(): fall through to str()
            pass
    if hasattr(value, "item") and callable(value.item):
        try:
            return jsonable(value.item(), cwd)
        except Exception:
            pass
    return str(value)


def finding_dict(finding: Finding, cwd: Any) -> dict[str, Any]:
    path = display_path(finding.path, cwd)
    out: dict[str, Any] = {
        "rule": finding.rule,
        "severity": finding.severity.value,
        "title": finding.title,
        "message": finding.message,
        "path": path,
        "locator": finding.locator,
        "evidence": jsonable(finding.evidence, cwd),
        "symptoms": list(finding.symptoms),
        "fix": finding.fix,
        "fingerprint": finding.fingerprint(path),
        "line": finding.line,
    }
    if finding.action is not None:
        out["action"] = jsonable(finding.action.to_dict(), cwd)
    return out


def report_dict(report: Report, ctx: Any) -> dict[str, Any]:
    cwd = ctx.cwd
    return {
        "schema": SCHEMA,
        "tool": {"name": TOOL_NAME, "version": ctx.version},
        "artifacts": [
            {"path": display_path(a.path, cwd), "kind": a.kind, "facts": jsonable(a.facts, cwd)}
            for a in report.artifacts
        ],
        "findings": [finding_dict(f, cwd) for f in report.findings],
        "summary": report.counts(),
        "exit_code": report.exit_code,
        "suppressed": report.suppressed,
        "timings": jsonable(report.timings, cwd),
    }


def render(report: Report, ctx: Any) -> str:
    data = report_dict(report, ctx)
    # allow_nan=False: a non-finite value that slipped past jsonable() is a bug, not silent invalid JSON.
    return (
        json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=lambda o: jsonable(o, ctx.cwd)) + "\n"
    )
