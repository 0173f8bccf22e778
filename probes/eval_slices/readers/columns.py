"""The columns of a per-example table (id, slice, score, optional variant/refused/latency…) → an `EvalTable`.

Every per-example reader (CSV/TSV, JSONL, Parquet, the lm-eval samples, LLaMA-Factory predictions, judge
and prediction records, summaries with embedded rows) hands its columns to `normalize`: a column is a
list of values (standard-library path) or a pyarrow array (big files).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from probes.eval_slices.evaltable import EvalTable, Problem, id_at
from probes.eval_slices.readers.arrays import factorize, to_numpy

ID_COLS = ("id", "example_id", "doc_id", "uid")
SCORE_COLS = ("score", "correct", "acc", "exact_match")
VARIANT_COLS = ("variant", "model")
OPTIONAL = {"refused": "refused", "latency_ms": "latency_ms", "vram_mb": "vram_mb", "throughput": "throughput"}
# Lowercased openings that count as a refusal (same list the job workers use; copied, they import torch).
REFUSAL_MARKERS = ("i can't", "i cannot", "i can not", "i won't", "sorry", "i'm sorry", "i am unable")
_TRUE = {"true", "yes", "y", "t", "correct", "pass"}
_FALSE = {"false", "no", "n", "f", "incorrect", "fail"}
# How many examples (ids, line numbers) a problem's message and evidence show.
EXAMPLES = 5


def _pick(columns: list[str], choices: tuple[str, ...]) -> str | None:
    low = {c.lower(): c for c in columns}
    for c in choices:
        if c in low:
            return low[c]
    return None


def parse_score(v: Any) -> tuple[float, str]:
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


def wanted(header: list[str]) -> list[str]:
    keep = set(ID_COLS) | set(SCORE_COLS) | set(VARIANT_COLS) | set(OPTIONAL) | {"slice", "output"}
    return [h for h in header if h.lower() in keep]


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
        x, why = parse_score(v)
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
        return np.array([parse_score(v)[0] for v in values], dtype=np.float64)
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
            examples = [id_at(table.ids, int(i)) for i in dup[:EXAMPLES]]
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
