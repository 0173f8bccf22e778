"""`doctor inspect`: each artifact's kind and the normalized facts the probes established."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, Report, display_path
from doctor.render.json_report import jsonable

# Findings that mean doctor could not read an input: `inspect` shows them as `check` does, and exits 1.
READ_ERROR_RULES = ("DOC001", "DOC002")

# Facts too long for the text view are summarised (the JSON view keeps them whole).
_MAX_INLINE = 12


def render_inspect(report: Report, fmt: str, matrix: bool = False) -> str:
    from doctor.render.escape import for_format
    from doctor.render.redact import redact_report

    report = redact_report(report)
    return for_format(fmt, _render(report, fmt, matrix))


def read_errors(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.rule in READ_ERROR_RULES]


def _error_dict(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "path": display_path(f.path), "message": f.message, "locator": f.locator}


def _under(path: Path | None, folder: Path) -> bool:
    return path is not None and (path == folder or folder in path.parents)


def _render(report: Report, fmt: str, matrix: bool) -> str:
    errors = read_errors(report)
    if fmt == "json":
        payload: dict[str, Any] = {
            "schema": "peft-doctor/inspect/1",
            "artifacts": [a.to_dict(display_path(a.path)) for a in report.artifacts],
            "errors": [_error_dict(f) for f in errors],
        }
        if matrix:
            payload = {"schema": "peft-doctor/matrix/1", "matrix": _matrix_rows(report)}
        return json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n"
    if matrix:  # the matrix alone: the facts behind it are one `doctor inspect` away
        return _matrix_text(report) + "\n"
    lines: list[str] = []
    shown: set[int] = set()
    for a in report.artifacts:
        lines.append(f"{display_path(a.path)}  [{a.kind}]")
        for f in errors:
            if id(f) not in shown and _under(f.path, a.path):
                shown.add(id(f))
                lines.append(f"  ✗ {f.rule} {f.message}" + (f" (at {f.locator})" if f.locator else ""))
        for key, value in a.facts.items():
            lines.extend(_fact_lines(key, value, "  "))
        lines.append("")
    for f in errors:
        if id(f) not in shown:
            lines.append(f"✗ {f.rule} {display_path(f.path)}: {f.message}")
    if not report.artifacts:
        lines.append("no artifacts found")
    return "\n".join(lines) + "\n"


def _fact_lines(key: str, value: Any, indent: str) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if all(_cell(v) for row in value for v in row.values()):
            return [f"{indent}{key}:", *_table(value, indent + "  ")]
        return [f"{indent}{key}:", *_blocks(value, indent + "  ")]
    if (
        isinstance(value, dict)
        and value
        and len(value) <= _MAX_INLINE
        and all(not isinstance(v, (dict, list)) for v in value.values())
    ):
        inner = ", ".join(f"{k}={_short(v)}" for k, v in value.items())
        return [f"{indent}{key}: {inner}"]
    if isinstance(value, dict) and value:
        out = [f"{indent}{key}:"]
        for k, v in value.items():
            out.extend(_fact_lines(str(k), v, indent + "  "))
        return out
    return [f"{indent}{key}: {_short(value)}"]


def _cell(value: Any) -> bool:
    """A value that reads well in a table cell (nested records get their own block instead)."""
    if isinstance(value, list):
        return all(not isinstance(v, (dict, list)) for v in value)
    return not isinstance(value, dict)


def _blocks(rows: list[dict[str, Any]], indent: str) -> list[str]:
    """Records with nested values, one YAML-like block each (a table would print Python reprs)."""
    out: list[str] = []
    for row in rows:
        lines: list[str] = []
        for k, v in row.items():
            lines.extend(_fact_lines(str(k), v, indent + "  "))
        if lines:
            lines[0] = indent + "- " + lines[0][len(indent) + 2 :]
        out.extend(lines or [indent + "- (empty)"])
    return out


def _short(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items()) or "none"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        if len(value) > _MAX_INLINE:
            head = ", ".join(_short(v) for v in value[:_MAX_INLINE])
            return f"[{head}, … {len(value)} items]"
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def _table(rows: list[dict[str, Any]], indent: str) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    cells = [[_short(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = [indent + "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    out.extend(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells)
    return out


def _matrix_rows(report: Report) -> list[dict[str, Any]]:
    from doctor.render.matrix import compatibility_matrix

    return compatibility_matrix(report)


def _matrix_text(report: Report) -> str:
    from doctor.render.matrix import render_matrix

    rows = _matrix_rows(report)
    if not rows:
        return "compatibility matrix: no serving configs or adapters to compare"
    return "compatibility matrix:\n" + render_matrix(rows, "text")
