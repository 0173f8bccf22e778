"""Eval table readers: CSV/TSV, JSONL, Parquet and lm-evaluation-harness outputs → one normalized form.

A normalized `EvalTable` holds integer codes (ids, slices, variants) and float arrays (score, refused,
latency), so pairing a million rows is array arithmetic. Small files are read with the standard library
(no pyarrow/pandas import on a tiny rollout); big ones with pyarrow's multithreaded readers.
Problems that do not stop the read (bad scores, duplicate ids, empty slices, mixed types) are recorded
as `problems` and become findings; the remaining rows are still analysed.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json

ID_COLS = ("id", "example_id", "doc_id", "uid")
SCORE_COLS = ("score", "correct", "acc", "exact_match")
VARIANT_COLS = ("variant", "model")
OPTIONAL = {"refused": "refused", "latency_ms": "latency_ms", "vram_mb": "vram_mb", "throughput": "throughput"}
# lm-evaluation-harness per-sample metric keys, in order of preference.
LM_EVAL_METRICS = ("acc", "exact_match", "acc_norm", "em", "f1", "pass@1", "bleu", "rouge1", "mc1", "mc2")
# Lowercased openings that count as a refusal (same list the job workers use; copied, they import torch).
REFUSAL_MARKERS = ("i can't", "i cannot", "i can not", "i won't", "sorry", "i'm sorry", "i am unable")
_TRUE = {"true", "yes", "y", "t", "correct", "pass"}
_FALSE = {"false", "no", "n", "f", "incorrect", "fail"}
# Files above this size go through pyarrow; smaller ones through csv/json (no pyarrow import).
BIG_FILE = 2_000_000
_EXAMPLES = 5


@dataclass
class Problem:
    kind: str  # missing_columns | duplicate_ids | bad_scores | empty_slice | mixed_types | bad_lines
    message: str
    locator: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    fatal: bool = False


@dataclass
class EvalTable:
    path: Path
    fmt: str
    columns: list[str] = field(default_factory=list)
    rows: int = 0
    id_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ids: Any = field(default_factory=list)  # uniques (code -> id): list of str or a pyarrow string array
    slice_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slices: list[str] = field(default_factory=list)
    variant_codes: np.ndarray | None = None
    variants: list[str] = field(default_factory=list)  # uniques; a single name when from the file name
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # refused, latency_ms, vram_mb, throughput
    problems: list[Problem] = field(default_factory=list)
    aggregate: dict[str, Any] | None = None  # facts of an aggregate-only file (no per-example rows)
    aggregates: list[Any] = field(default_factory=list)  # AggMetric (probes.eval_slices.aggregate)
    line_offset: int = 2  # row i is on line i + line_offset (CSV header), 1 for JSONL
    metric: str = "score"  # name of `score`: the file's column or metric (`acc,none`, `bleu-4`, ...)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # further per-row metrics (0..1), by name
    scored_by: str = ""  # how doctor scored rows that came without a score ("" = the file's own scores)
    named_from: str = "file"  # where the variant name came from: column | file (renamed by pairing)
    hint: dict[str, Any] = field(default_factory=dict)  # model / pretrained / peft the file records
    link: str = ""  # run key shared by files of one run (lm-eval timestamp), for pairing
    covers: set[tuple[str, str]] = field(default_factory=set)  # (task, metric) aggregates these rows supersede
    groupings: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)  # more slice columns
    metric_scales: dict[str, float] = field(default_factory=dict)  # a metric's own range (judge 1..10 → 10)
    claims: list[dict[str, Any]] = field(default_factory=list)  # stated vs recomputed numbers (summaries)

    @property
    def usable(self) -> bool:
        return self.aggregate is None and not any(p.fatal for p in self.problems)

    @property
    def is_aggregate(self) -> bool:
        return self.aggregate is not None and not any(p.fatal for p in self.problems)

    def with_metric(self, name: str) -> EvalTable:
        """The same rows scored by another of the file's metrics (arrays shared, not copied)."""
        from dataclasses import replace

        return replace(self, score=self.metrics[name], metric=name)

    def with_grouping(self, name: str) -> EvalTable:
        """The same rows sliced by another slice column (`difficulty=hard`)."""
        from dataclasses import replace

        codes, names = self.groupings[name]
        return replace(self, slice_codes=codes, slices=names)

    def variant_of_rows(self) -> list[tuple[str, np.ndarray | None]]:
        """(variant name, row mask or None for all rows) for every variant in the file."""
        if self.variant_codes is None:
            return [(self.variants[0], None)]
        return [(name, self.variant_codes == i) for i, name in enumerate(self.variants)]


# --------------------------------------------------------------------------------------------- helpers


def factorize(values: Any, keep_arrow: bool = False) -> tuple[np.ndarray, Any]:
    """Integer codes and uniques (first-seen order) of a list of str or a pyarrow array.

    Uniques come back as a list, or as a pyarrow array with `keep_arrow` (a million ids stay in Arrow).
    """
    if isinstance(values, list):
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
        return codes, list(index)
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type) and values.null_count:
        values = values.cast(pa.string())
    if not pa.types.is_dictionary(values.type):
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            values = pc.cast(values, pa.string())
        if values.null_count:
            values = values.fill_null("")
        if keep_arrow and _all_distinct(values):
            # the common case for ids (one row per example): no hashing, the array is its own dictionary
            return np.arange(len(values), dtype=np.int64), values
        values = pc.dictionary_encode(values)
    codes = to_numpy(values.indices).astype(np.int64, copy=False)
    if keep_arrow:
        return codes, values.dictionary
    return codes, [str(d) for d in values.dictionary.to_pylist()]


_NP_TYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float": np.float32,
    "double": np.float64,
    "halffloat": np.float16,
}


def to_numpy(arr: Any) -> np.ndarray:
    """A null-free primitive pyarrow array as numpy, zero-copy (pyarrow's own to_numpy may import pandas)."""
    dt = _NP_TYPES.get(str(arr.type))
    if dt is None or arr.null_count:
        return arr.to_numpy(zero_copy_only=False)
    return np.frombuffer(arr.buffers()[1], dtype=dt, count=len(arr), offset=arr.offset * np.dtype(dt).itemsize)


def _all_distinct(values: Any) -> bool:
    """True when no string repeats: a strictly increasing array (cheap check) or a full distinct count."""
    import pyarrow.compute as pc

    n = len(values)
    if n < 2:
        return True
    if pc.all(pc.greater(values.slice(1), values.slice(0, n - 1))).as_py():
        return True
    return pc.count_distinct(values).as_py() == n


def id_at(ids: Any, i: int) -> str:
    v = ids[i]
    return str(v.as_py()) if hasattr(v, "as_py") else str(v)


def _pick(columns: list[str], choices: tuple[str, ...]) -> str | None:
    low = {c.lower(): c for c in columns}
    for c in choices:
        if c in low:
            return low[c]
    return None


def _row_locator(table: EvalTable, rows: np.ndarray) -> list[str]:
    return [f"line {int(r) + table.line_offset}" for r in rows[:_EXAMPLES]]


def _parse_score(v: Any) -> tuple[float, str]:
    """(value, '' | 'missing' | 'non_numeric'), for the standard-library path."""
    if v is None:
        return math.nan, "missing"
    if isinstance(v, bool):
        return float(v), ""
    if isinstance(v, (int, float)):
        return (math.nan, "missing") if isinstance(v, float) and math.isnan(v) else (float(v), "")
    s = str(v).strip()
    if not s or s.lower() in ("nan", "na", "null", "none"):
        return math.nan, "missing"
    low = s.lower()
    if low in _TRUE:
        return 1.0, ""
    if low in _FALSE:
        return 0.0, ""
    try:
        x = float(s)
    except ValueError:
        return math.nan, "non_numeric"
    return (math.nan, "missing") if math.isnan(x) else (x, "")


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


# ------------------------------------------------------------------------------------------ raw readers


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
    want = _wanted(header)
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


def _wanted(header: list[str]) -> list[str]:
    keep = set(ID_COLS) | set(SCORE_COLS) | set(VARIANT_COLS) | set(OPTIONAL) | {"slice", "output"}
    return [h for h in header if h.lower() in keep]


def _json_objects(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
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
    objects, bad = _json_objects(path)
    if bad and not objects:
        raise ReadError(path, "no line is a JSON object", f"line {bad[0]}")
    if bad:
        table.problems.append(
            Problem(
                "bad_lines",
                f"{len(bad)} line(s) are not JSON objects and were skipped (first: line {bad[0]})",
                f"line {bad[0]}",
                {"count": len(bad), "lines": bad[:_EXAMPLES]},
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
    want = _wanted(header)
    return header, {c: [r.get(c) for r in rows] for c in want}


def _read_parquet(path: Path) -> tuple[list[str], dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        want = _wanted(list(schema.names))
        tbl = pq.read_table(path, columns=want)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReadError(path, f"invalid Parquet: {exc}") from None
    return list(schema.names), {c: tbl.column(c) for c in want}


# ------------------------------------------------------------------------------------------ normalizing


def _strings(values: Any) -> Any:
    """A column as either a list of str (std-lib path) or a pyarrow array, for factorize()."""
    if isinstance(values, list):
        return ["" if v is None else str(v) for v in values]
    return values


def _score_array(values: Any, table: EvalTable, col: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Float scores (NaN where unusable) and the row indices of each kind of problem."""
    bad: dict[str, list[int]] = {"missing": [], "non_numeric": []}
    if not isinstance(values, list):
        import pyarrow as pa

        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        t = values.type
        if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
            if pa.types.is_boolean(t):
                values = values.cast(pa.int8())
            if values.null_count:
                arr = to_numpy(values.fill_null(0)).astype(np.float64)
                arr[np.asarray(values.is_null().to_pylist())] = np.nan
            else:
                arr = to_numpy(values).astype(np.float64)
            return arr, {"missing": np.flatnonzero(np.isnan(arr)), "non_numeric": np.zeros(0, np.int64)}
        values = values.to_pylist()
    types: set[str] = set()
    out = np.empty(len(values))
    for i, v in enumerate(values):
        types.add(_type_name(v))
        x, why = _parse_score(v)
        out[i] = x
        if why:
            bad[why].append(i)
    types.discard("null")
    if len(types) > 1 and table.fmt in ("jsonl", "lm_eval_samples"):
        table.problems.append(
            Problem(
                "mixed_types",
                f"column {col!r} mixes value types ({', '.join(sorted(types))}); "
                "values were coerced to numbers where possible",
                col,
                {"column": col, "types": sorted(types)},
            )
        )
    return out, {k: np.asarray(v, dtype=np.int64) for k, v in bad.items()}


def _num_array(values: Any) -> np.ndarray:
    if isinstance(values, list):
        return np.array([_parse_score(v)[0] for v in values], dtype=np.float64)
    import pyarrow as pa
    import pyarrow.compute as pc

    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return _num_array(values.to_pylist())
    if values.null_count:
        arr = to_numpy(values.fill_null(0)).astype(np.float64)
        arr[np.asarray(pc.is_null(values).to_pylist())] = np.nan
        return arr
    return to_numpy(values).astype(np.float64)


def _refusals_from_output(values: Any) -> np.ndarray:
    vals = values if isinstance(values, list) else values.to_pylist()
    return np.array(
        [math.nan if v is None else float(str(v).strip().lower().startswith(REFUSAL_MARKERS)) for v in vals]
    )


def normalize(table: EvalTable, header: list[str], cols: dict[str, Any], default_variant: str) -> EvalTable:
    table.columns = header
    id_col = _pick(header, ID_COLS)
    score_col = _pick(header, SCORE_COLS)
    missing = [n for n, c in (("id", id_col), ("slice", _pick(header, ("slice",))), ("score", score_col)) if c is None]
    if missing:
        table.problems.append(
            Problem(
                "missing_columns",
                f"missing required column(s) {', '.join(missing)}; the file has: {', '.join(header) or '(no header)'}",
                "header",
                {"missing": missing, "columns": header},
                fatal=True,
            )
        )
        return table
    slice_col = _pick(header, ("slice",))
    n = len(cols[id_col])
    table.rows = n
    if n == 0:
        table.problems.append(
            Problem("missing_columns", "the table has a header but no rows", "header", {"columns": header}, fatal=True)
        )
        return table
    table.id_codes, table.ids = factorize(_strings(cols[id_col]), keep_arrow=True)
    table.slice_codes, table.slices = factorize(_strings(cols[slice_col]))
    var_col = _pick(header, VARIANT_COLS)
    if var_col is not None:
        table.named_from = "column"
        table.variant_codes, table.variants = factorize(_strings(cols[var_col]))
        empty_v = [i for i, v in enumerate(table.variants) if not v.strip()]
        if empty_v:
            # rows without a variant name fall back to the file's default name
            name = default_variant
            if name in table.variants:
                j = table.variants.index(name)
                for i in empty_v:
                    table.variant_codes[table.variant_codes == i] = j
            else:
                table.variants[empty_v[0]] = name
                for i in empty_v[1:]:
                    table.variant_codes[table.variant_codes == i] = empty_v[0]
        if len(set(table.variants)) == 1:
            table.variants, table.variant_codes = [table.variants[0]], None
    else:
        table.variants = [default_variant]
    score, bad = _score_array(cols[score_col], table, score_col)
    out_of_range = np.flatnonzero((score < 0) | (score > 1))
    if bad["missing"].size or bad["non_numeric"].size or out_of_range.size:
        parts = []
        ev: dict[str, Any] = {"column": score_col, "rows": n}
        vals = cols[score_col]
        for kind, rows in (
            ("missing or NaN", bad["missing"]),
            ("non-numeric", bad["non_numeric"]),
            ("outside 0..1", out_of_range),
        ):
            if rows.size:
                shown = []
                for r in rows[:3]:
                    v = vals[int(r)] if isinstance(vals, list) else vals[int(r)].as_py()
                    shown.append(f"{v!r} at line {int(r) + table.line_offset}")
                parts.append(f"{rows.size} {kind} ({'; '.join(shown)})")
                ev[kind.replace(" ", "_")] = int(rows.size)
        first = min(int(r[0]) for r in (bad["missing"], bad["non_numeric"], out_of_range) if r.size)
        table.problems.append(
            Problem(
                "bad_scores",
                f"{score_col}: " + ", ".join(parts) + "; those rows are left out of the comparison",
                f"line {first + table.line_offset}",
                ev,
            )
        )
        score[out_of_range] = np.nan
    table.score = score
    # Rows without a slice.
    empty = [i for i, s in enumerate(table.slices) if not s.strip()]
    if empty:
        rows = np.flatnonzero(np.isin(table.slice_codes, empty))
        table.problems.append(
            Problem(
                "empty_slice",
                f"{rows.size} row(s) have an empty slice name (first at "
                f"line {int(rows[0]) + table.line_offset}); they are left out",
                f"line {int(rows[0]) + table.line_offset}",
                {"rows": int(rows.size)},
            )
        )
        table.score[rows] = np.nan
    # Slices whose every score is unusable.
    valid = ~np.isnan(table.score)
    per = np.bincount(table.slice_codes, weights=valid, minlength=len(table.slices))
    dead = [table.slices[i] for i in range(len(table.slices)) if per[i] == 0 and table.slices[i].strip()]
    if dead:
        table.problems.append(
            Problem("empty_slice", f"slice(s) {', '.join(dead)} have rows but no usable score", "", {"slices": dead})
        )
    _check_duplicates(table)
    for name, key in OPTIONAL.items():
        c = _pick(header, (key,))
        if c is not None:
            table.extra[name] = _num_array(cols[c])
    out_col = _pick(header, ("output",))
    if "refused" not in table.extra and out_col is not None:
        table.extra["refused"] = _refusals_from_output(cols[out_col])
    return table


def _check_duplicates(table: EvalTable) -> None:
    """Duplicate ids within one variant: keep the first, report the count."""
    n_ids = len(table.ids)
    groups = table.variant_of_rows()
    for name, mask in groups:
        codes = table.id_codes if mask is None else table.id_codes[mask]
        counts = np.bincount(codes, minlength=n_ids)
        dup = np.flatnonzero(counts > 1)
        if dup.size:
            extra = int(counts[dup].sum() - dup.size)
            examples = [id_at(table.ids, int(i)) for i in dup[:_EXAMPLES]]
            shown = ", ".join(repr(x) for x in examples)
            where = f" in variant {name!r}" if len(groups) > 1 or table.variant_codes is not None else ""
            table.problems.append(
                Problem(
                    "duplicate_ids",
                    f"{dup.size} id(s) appear more than once{where} ({extra} extra rows; "
                    f"e.g. {shown}); the first row of each is used",
                    f"variant {name}",
                    {"variant": name, "duplicated_ids": int(dup.size), "extra_rows": extra, "examples": examples},
                )
            )


# ---------------------------------------------------------------------------------------------- entry


def read_table(path: Path, default_variant: str | None = None) -> EvalTable:
    """Read one eval file (see probes.eval_slices.readers)."""
    from probes.eval_slices.readers import read_table as read

    return read(path, default_variant)


def read_csv_like(path: Path, variant: str) -> EvalTable:
    """CSV/TSV/JSONL/Parquet per-example tables with id, slice and score columns."""
    low = path.name.lower()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    if low.endswith((".csv", ".tsv")):
        sep = "\t" if low.endswith(".tsv") else ","
        table = EvalTable(path, "csv", line_offset=2)
        if size > BIG_FILE:
            header, cols = _read_arrow_csv(path, sep)
        else:
            header, cols = _read_csv_small(path, sep)
        return normalize(table, header, cols, variant)
    if low.endswith(".jsonl"):
        table = EvalTable(path, "jsonl", line_offset=1)
        header, cols = _read_jsonl_small(path, table)
        return normalize(table, header, cols, variant)
    if low.endswith(".parquet"):
        table = EvalTable(path, "parquet", line_offset=1)
        header, cols = _read_parquet(path)
        return normalize(table, header, cols, variant)
    raise ReadError(path, "not an eval table format doctor reads (csv, tsv, jsonl, parquet, lm-eval json)")


def stat_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size
