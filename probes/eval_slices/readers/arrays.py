"""Column values → numpy: integer codes of strings (`factorize`) and zero-copy views of pyarrow arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


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
