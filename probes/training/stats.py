"""Vectorized robust statistics shared by the detectors (numpy only, no per-point Python)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_SCALE = 1.4826


def block_stride(n: int, window: int) -> int:
    """Exact (stride 1) for ordinary runs; for very long runs the trailing window advances in blocks of
    window/5 points (up to 250k points; the window is then up to 20% older), and in whole windows beyond
    that (up to one window older, e.g. 64 of a million steps: a million-step log is read and analysed in
    less time than json.load takes to parse it)."""
    if n <= 50_000:
        return 1
    return max(1, window // 5) if n <= 250_000 else max(1, window)


def trailing_median_mad(x: np.ndarray, window: int, min_history: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the points *before* i (the current point excluded, OLMo-style): the last
    `window` points, or all earlier ones while fewer than `window` but at least `min_history` exist.
    NaN where there is too little history."""
    n = x.size
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n <= min_history:
        return med, mad
    head_end = min(n, window + 1)
    for i in range(min_history, head_end):  # expanding part: at most `window` iterations
        h = x[:i]
        m = np.median(h)
        med[i] = m
        mad[i] = np.median(np.abs(h - m))
    if n > window + 1:
        stride = block_stride(n, window)
        wins = sliding_window_view(x[: n - 1], window)[::stride]  # window k covers [k*stride, k*stride+window)
        wm = np.median(wins, axis=1)
        wd = np.median(np.abs(wins - wm[:, None]), axis=1)
        idx = np.arange(window + 1, n)
        k = (idx - window) // stride
        med[window + 1 :] = wm[k]
        mad[window + 1 :] = wd[k]
    return med, mad


def trailing_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median of the last `window` points including i (causal smoothing); expanding at the start."""
    n = x.size
    out = np.empty(n)
    head = min(n, window - 1)
    for i in range(head):
        out[i] = np.median(x[: i + 1])
    if n >= window:
        stride = block_stride(n, window)
        wins = sliding_window_view(x, window)[::stride]
        wm = np.median(wins, axis=1)
        idx = np.arange(window - 1, n)
        out[window - 1 :] = wm[(idx - (window - 1)) // stride]
    return out


def first_run(mask: np.ndarray, length: int) -> int:
    """Index where the first run of >= `length` consecutive True values completes, or -1."""
    if length <= 1:
        hits = np.flatnonzero(mask)
        return int(hits[0]) if hits.size else -1
    m = mask.astype(np.int32)
    c = np.concatenate(([0], np.cumsum(m)))
    idx = np.arange(length, m.size + 1)
    full = (c[idx] - c[idx - length]) == length
    hits = np.flatnonzero(full)
    return int(hits[0] + length - 1) if hits.size else -1


def downsample_idx(n: int, limit: int, keep: np.ndarray | None = None) -> np.ndarray:
    """At most `limit` indices spread over 0..n-1, always including `keep` (flagged points)."""
    if n <= limit:
        return np.arange(n)
    keep = np.zeros(0, dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64)[: limit // 3]
    base = np.linspace(0, n - 1, max(2, limit - keep.size)).astype(np.int64)
    return np.unique(np.concatenate([base, keep]))
