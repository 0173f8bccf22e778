"""Generic CSV/TSV training logs with step/loss/grad_norm/lr columns (names configurable)."""

from __future__ import annotations

import csv
from pathlib import Path

from probes.training.readers.records import records_to_series
from probes.training.series import Series


def _cell(v: str):
    v = v.strip()
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


def read_csv(path: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="csv")
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, None)
            if header is None:
                s.problem("doc", "byte 0", "file is empty; nothing to analyse")
                return s
            header = [h.strip().strip('"') for h in header]
            rows = []
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    s.problem(
                        "entry",
                        f"line {lineno}",
                        f"line {lineno} has {len(row)} fields, header has {len(header)}; skipped",
                    )
                    continue
                rows.append({h: _cell(v) for h, v in zip(header, row)})
    except (OSError, csv.Error) as exc:
        s.problem("doc", "", f"cannot read CSV: {exc}")
        return s
    low = {h.lower(): h for h in header}
    ov = dict(overrides or {})
    for field, aliases in (("step", ("step", "global_step", "iteration")),):
        if field not in ov:
            for a in aliases:
                if a in low:
                    ov[field] = low[a]
                    break
    return records_to_series(rows, s, where="row ", overrides=ov)
