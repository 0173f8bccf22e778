"""Parquet per-example tables (pyarrow; only the columns doctor uses are read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from probes.eval_slices.evaltable import EvalTable
from probes.eval_slices.readers.columns import normalize, wanted


def _read_parquet(path: Path) -> tuple[list[str], dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        want = wanted(list(schema.names))
        tbl = pq.read_table(path, columns=want)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReadError(path, f"invalid Parquet: {exc}") from None
    return list(schema.names), {c: tbl.column(c) for c in want}


def read(path: Path, variant: str) -> EvalTable:
    table = EvalTable(path, "parquet", line_offset=1)
    header, cols = _read_parquet(path)
    return normalize(table, header, cols, variant)
