"""JSON-lines files: the line reader several formats share, and the plain id/slice/score JSONL table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json
from probes.eval_slices.evaltable import EvalTable, Problem
from probes.eval_slices.readers.columns import EXAMPLES, normalize, wanted


def json_lines(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """(line number, object) for each JSON-object line, and the numbers of lines that are not one."""
    objects: list[tuple[int, dict[str, Any]]] = []
    bad: list[int] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = loads_json(line)
                except ValueError:
                    bad.append(lineno)
                    continue
                if isinstance(obj, dict):
                    objects.append((lineno, obj))
                else:
                    bad.append(lineno)
    except UnicodeDecodeError as exc:
        raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
    return objects, bad


def json_objects_of(path: Path, table: EvalTable) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) of a JSON-lines file; skipped lines are a problem on `table`, none at all a ReadError."""
    objects, bad = json_lines(path)
    if bad and not objects:
        raise ReadError(path, "no line is a JSON object", f"line {bad[0]}")
    if bad:
        table.problems.append(
            Problem(
                "bad_lines",
                f"{len(bad)} line(s) are not JSON objects and were skipped (first: line {bad[0]})",
                f"line {bad[0]}",
                {"count": len(bad), "lines": bad[:EXAMPLES]},
            )
        )
    return objects


def _read_jsonl_small(path: Path, table: EvalTable) -> tuple[list[str], dict[str, list[Any]]]:
    rows = [obj for _, obj in json_objects_of(path, table)]
    header: list[str] = []
    seen: set[str] = set()
    for r in rows[:1000]:
        for k in r:
            if k not in seen:
                seen.add(k)
                header.append(k)
    want = wanted(header)
    return header, {c: [r.get(c) for r in rows] for c in want}


def read(path: Path, variant: str) -> EvalTable:
    """A JSONL per-example table with id, slice and score keys."""
    table = EvalTable(path, "jsonl", line_offset=1)
    header, cols = _read_jsonl_small(path, table)
    return normalize(table, header, cols, variant)
