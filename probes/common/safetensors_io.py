"""A safetensors reader that trusts nothing: header first, validated against the file size, then
tensors one at a time through a memory map (numpy only; torch is never imported).

Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer. Each
header entry is {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data
buffer. Everything is checked before a byte of tensor data is touched: N against the file size
(a hostile N near 2^64 is refused before any allocation), dtype names, shapes, offsets in range,
sizes matching shape x itemsize, no two tensors overlapping.

Memory: pages a tensor touched are dropped from the process (madvise DONTNEED; they stay in the
page cache) once the caller is done with it, so peak RSS is bounded by the largest tensor, not
the file size.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doctor.core.safeio import loads_json

# Safetensors refuses headers above 100 MB; so do we (a 7B adapter's header is ~50 KB).
MAX_HEADER = 100_000_000
_PAGE = mmap.PAGESIZE

# dtype name → item size in bytes (the safetensors spec list).
ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


class Unreadable(Exception):
    """The file is not a valid safetensors file; `where` says where (byte offset, tensor name)."""

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offset
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    """(tensors by name, __metadata__, file size). Raises Unreadable on any inconsistency."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unreadable(f"cannot stat: {exc.strerror}") from None
    if size < 8:
        raise Unreadable(f"file is {size} bytes; a safetensors file needs at least the 8-byte header length", "byte 0")
    try:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > MAX_HEADER:
                raise Unreadable(f"header length {n} is absurd (file is {size} bytes, limit {MAX_HEADER})", "byte 0")
            if n > size - 8:
                raise Unreadable(f"header length {n} exceeds the {size - 8} bytes after it (truncated?)", "byte 0")
            raw = fh.read(n)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror}") from None
    try:
        header = loads_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"header is not valid JSON ({exc})", "byte 8") from None
    if not isinstance(header, dict):
        raise Unreadable("header is not a JSON object", "byte 8")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise Unreadable("__metadata__ is not an object", "__metadata__")
    base = 8 + n
    data_len = size - base
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise Unreadable(f"tensor {name!r}: entry is not an object", name)
        dtype, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in ITEMSIZE:
            raise Unreadable(f"tensor {name!r}: unknown dtype {dtype!r}", name)
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise Unreadable(f"tensor {name!r}: bad shape {shape!r}", name)
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise Unreadable(f"tensor {name!r}: bad data_offsets {offs!r}", name)
        b, e = offs
        if not 0 <= b <= e:
            raise Unreadable(f"tensor {name!r}: data_offsets [{b}, {e}] are not ordered", name)
        if e > data_len:
            raise Unreadable(
                f"tensor {name!r}: data_offsets end {e} beyond the {data_len}-byte data section (file truncated?)", name
            )
        info = TensorInfo(name, dtype, tuple(shape), base + b, base + e)
        if info.numel * ITEMSIZE[dtype] != e - b:
            raise Unreadable(
                f"tensor {name!r}: shape {list(shape)} x {ITEMSIZE[dtype]} bytes = {info.numel * ITEMSIZE[dtype]} "
                f"but data_offsets span {e - b} bytes",
                name,
            )
        tensors[name] = info
    prev: TensorInfo | None = None
    for t in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if prev is not None and t.start < prev.end and t.nbytes and prev.nbytes:
            raise Unreadable(
                f"tensors {prev.name!r} [{prev.start - base}, {prev.end - base}] and {t.name!r} "
                f"[{t.start - base}, {t.end - base}] overlap",
                t.name,
            )
        prev = t
    return tensors, {str(k): str(v) for k, v in meta.items()}, size


@functools.cache
def _f16_table() -> np.ndarray:
    """float32 value of every float16 bit pattern (NaN/Inf included), 256 KiB."""
    return np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)


_F16_SIGN_AND_BITS = np.int32(0x8FFFFFFF - (1 << 32))  # bit 31 + exponent/mantissa bits 0..27
_F16_REBIAS = np.float32(2.0**112)  # 2**(127 - 15): float32 exponent bias minus float16's


F16_NONFINITE_AT = 65536.0  # what f16_to_f32(..., exact=False) makes of Inf/NaN: |x| >= this


def f16_to_f32(u: np.ndarray, exact: bool = True) -> np.ndarray:
    """Exact float16 bits → float32, four passes of integer/float arithmetic (4x numpy's cast here, which
    does not use F16C, and 4x a table lookup). Sign-extend to int32 and shift left 13: the sign lands on
    bits 28-31, exponent and mantissa on 13-27; clear bits 28-30; multiply by 2**112 to re-bias the
    exponent, which also scales float16 subnormals exactly. Inf/NaN come out finite with |x| >= 65536,
    beyond float16's largest finite 65504: a tensor holding any is converted through the exact table.
    exact=False skips that check (two passes) for a caller that detects |x| >= 65536 itself."""
    i = u.view(np.int16).astype(np.int32)
    np.left_shift(i, 13, out=i)
    np.bitwise_and(i, _F16_SIGN_AND_BITS, out=i)
    f = i.view(np.float32)
    np.multiply(f, _F16_REBIAS, out=f)
    if exact and f.size and (f.max() >= F16_NONFINITE_AT or f.min() <= -F16_NONFINITE_AT):
        return np.take(_f16_table(), u)
    return f


class TensorReader:
    """Memory-mapped tensor access: `f32(info)` gives a float32 array; `release(info)` drops its pages."""

    def __init__(self, path: Path, size: int) -> None:
        self._fh = path.open("rb")
        self._mm: mmap.mmap | None = None
        if size:
            self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_SEQUENTIAL"):
                self._mm.madvise(mmap.MADV_SEQUENTIAL)

    def raw(self, t: TensorInfo, np_dtype: Any) -> np.ndarray:
        assert self._mm is not None
        count = t.nbytes // np.dtype(np_dtype).itemsize
        return np.frombuffer(self._mm, dtype=np_dtype, count=count, offset=t.start)

    def f32(self, t: TensorInfo, exact: bool = True) -> np.ndarray:
        """The tensor as a float32 array of its shape (a copy for F16/BF16/F64, a view for F32).
        exact=False: see f16_to_f32 (F16 Inf/NaN may come out as finite values of magnitude >= 65536)."""
        if t.dtype == "F32":
            a = self.raw(t, "<f4")
        elif t.dtype == "F16":
            a = f16_to_f32(self.raw(t, "<u2"), exact)
        elif t.dtype == "BF16":
            # bf16 is the top half of a float32: widen, then shift into the high 16 bits.
            i = self.raw(t, "<u2").astype(np.uint32)
            np.left_shift(i, 16, out=i)
            a = i.view(np.float32)
        elif t.dtype == "F64":
            a = self.raw(t, "<f8").astype(np.float32)
        else:
            raise Unreadable(f"tensor {t.name!r}: dtype {t.dtype} is not a float type", t.name)
        return a.reshape(t.shape)

    def release(self, t: TensorInfo) -> None:
        """Drop the tensor's pages from this process (they stay in the page cache)."""
        if self._mm is None or not t.nbytes or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = t.start - t.start % _PAGE
        end = min(len(self._mm), -(-t.end // _PAGE) * _PAGE)
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a caller still holds a view; the map goes when it does
                pass
        self._fh.close()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Streamed sha256 of a file (constant memory), hex digest."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        fd = fh.fileno()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()
