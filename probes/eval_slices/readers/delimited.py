"""CSV/TSV per-example tables: small files with the standard library (no pyarrow import on a tiny rollout),
big ones with pyarrow's multithreaded reader."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from probes.eval_slices.evaltable import EvalTable
from probes.eval_slices.readers.columns import ID_COLS, VARIANT_COLS, normalize, wanted

# Files above this size go through pyarrow; smaller ones through csv (no pyarrow import).
BIG_FILE = 2_000_000


def _read_csv_small(path: Path, sep: str) -> tuple[list[str], dict[str, list[Any]]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, None)
            if header is None:
                return [], {}
            header = [h.strip() for h in header]
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:  # one name, two columns: which one holds the data is anyone's guess
                raise ReadError(path, f"column name(s) {', '.join(twice)} appear twice in the header", "line 1")
            cols: dict[str, list[Any]] = {h: [] for h in header}
            width = len(header)
            for row in reader:
                if not row:
                    continue
                if len(row) < width:
                    row = row + [""] * (width - len(row))
                for h, v in zip(header, row):
                    cols[h].append(v)
    except UnicodeDecodeError as exc:
        raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
    except csv.Error as exc:
        raise ReadError(path, f"invalid CSV: {exc}") from None
    return header, cols


def _read_arrow_csv(path: Path, sep: str) -> tuple[list[str], dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with path.open(encoding="utf-8", errors="replace") as fh:
        header = [h.strip() for h in next(csv.reader([fh.readline()], delimiter=sep), [])]
    want = wanted(header)
    types = {}
    for c in want:
        lc = c.lower()
        if lc in ID_COLS:
            types[c] = pa.string()
        elif lc == "slice" or lc in VARIANT_COLS:
            types[c] = pa.dictionary(pa.int32(), pa.string())
    try:
        tbl = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(include_columns=want, column_types=types, strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise ReadError(path, f"invalid CSV: {exc}") from None
    return header, {c: tbl.column(c) for c in want}


def read(path: Path, variant: str) -> EvalTable:
    """A CSV (or TSV, by its suffix) per-example table with id, slice and score columns."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    table = EvalTable(path, "csv", line_offset=2)
    if size > BIG_FILE:
        header, cols = _read_arrow_csv(path, sep)
    else:
        header, cols = _read_csv_small(path, sep)
    return normalize(table, header, cols, variant)
