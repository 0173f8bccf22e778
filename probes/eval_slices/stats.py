"""Paired statistics for per-slice eval comparisons, in numpy only (no scipy).

Everything works on per-slice *sufficient statistics* so a million paired rows cost one pass:

- binary scores: a paired difference is -1, 0 or +1, so a slice is fully described by the counts
  (n10 = base right / cand wrong, n00+n11 = ties, n01 = base wrong / cand right). McNemar's exact test
  needs only the discordant counts (two-sided binomial on n10 vs n01), and the paired bootstrap of the
  mean difference is *exactly* a multinomial draw over those three counts — no row is touched again.
- graded scores (0..1): the same trick over the distinct difference values when there are few of them;
  otherwise an index bootstrap (small slices) or the normal approximation (huge slices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

_N = NormalDist()
# Above this many distinct paired differences in a slice, a multinomial over them stops paying off.
_MAX_LEVELS = 512
# Above n * resamples of this size, an index bootstrap is replaced by the normal approximation.
_MAX_INDEX_WORK = 20_000_000


def z_quantile(p: float) -> float:
    return _N.inv_cdf(p)


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def binom_two_sided_half(k_min: int, m: int) -> float:
    """Exact two-sided binomial test of k successes in m trials with p = 1/2 (McNemar's exact test)."""
    if m == 0:
        return 1.0
    k = min(k_min, m - k_min)
    j = np.arange(1, k + 1, dtype=np.float64)
    # log C(m, i) for i = 0..k via a running sum of log((m - j + 1) / j).
    logc = np.concatenate(([0.0], np.cumsum(np.log((m - j + 1.0) / j))))
    top = logc.max()
    log_cdf = top + math.log(float(np.exp(logc - top).sum())) - m * math.log(2.0)
    return float(min(1.0, 2.0 * math.exp(log_cdf)))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.maximum.accumulate(adj)
    out = np.empty(m)
    out[order] = adj
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate control)."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(1.0, adj)
    return out


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    method = str(method).lower().replace("-", "_")
    if method in ("bh", "fdr", "benjamini_hochberg"):
        return benjamini_hochberg(p)
    if method in ("none", "off"):
        return np.asarray(p, dtype=np.float64)
    return holm(p)


@dataclass
class PairedResult:
    """One slice's paired comparison (candidate minus baseline)."""

    n: int
    base: float
    cand: float
    delta: float
    ci_low: float
    ci_high: float
    p: float
    mde: float
    sd: float
    binary: bool
    extra: dict = field(default_factory=dict)


def mde(sd: float, n: int, alpha: float, power: float) -> float:
    """Minimum detectable paired effect at two-sided `alpha` and `power` (normal approximation)."""
    if n <= 1:
        return 1.0
    sd = max(sd, 1.0 / math.sqrt(n))  # never claim to detect anything with zero observed spread
    return (z_quantile(1 - alpha / 2) + z_quantile(power)) * sd / math.sqrt(n)


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_binary(
    n10: int,
    n01: int,
    n: int,
    sum_base: float,
    *,
    alpha: float,
    power: float,
    resamples: int,
    rng: np.random.Generator,
) -> PairedResult:
    """Binary scores from counts: McNemar exact p and an exact multinomial paired bootstrap CI."""
    if n == 0:
        nan = float("nan")
        return PairedResult(0, nan, nan, nan, nan, nan, 1.0, 1.0, nan, True)
    delta = (n01 - n10) / n
    base = sum_base / n
    var = (n01 + n10) / n - delta * delta
    sd = math.sqrt(max(var, 0.0) * n / (n - 1)) if n > 1 else 0.0
    p = binom_two_sided_half(min(n10, n01), n10 + n01)
    if n10 + n01 == 0:
        lo = hi = 0.0
    else:
        draws = rng.multinomial(n, [n10 / n, 1 - (n10 + n01) / n, n01 / n], size=resamples)
        lo, hi = _percentiles((draws[:, 2] - draws[:, 0]) / n, alpha)
    return PairedResult(
        n,
        base,
        base + delta,
        delta,
        lo,
        hi,
        p,
        mde(sd, n, alpha, power),
        sd,
        True,
        {"n10": int(n10), "n01": int(n01)},
    )


def paired_graded(
    diffs: np.ndarray, base_mean: float, *, alpha: float, power: float, resamples: int, rng: np.random.Generator
) -> PairedResult:
    """Graded (0..1) scores: bootstrap CI of the mean paired difference; normal-approximation p."""
    n = len(diffs)
    if n == 0:
        nan = float("nan")
        return PairedResult(0, nan, nan, nan, nan, nan, 1.0, 1.0, nan, False)
    delta = float(diffs.mean())
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    se = sd / math.sqrt(n) if n > 0 else 0.0
    if se == 0.0:
        p = 1.0 if delta == 0 else 0.0
        lo = hi = delta
    else:
        p = normal_two_sided_p(delta / se)
        levels, counts = np.unique(diffs, return_counts=True)
        if len(levels) <= _MAX_LEVELS:
            draws = rng.multinomial(n, counts / n, size=resamples)
            lo, hi = _percentiles(draws @ levels / n, alpha)
        elif n * resamples <= _MAX_INDEX_WORK:
            idx = rng.integers(0, n, size=(resamples, n))
            lo, hi = _percentiles(diffs[idx].mean(axis=1), alpha)
        else:
            z = z_quantile(1 - alpha / 2)
            lo, hi = delta - z * se, delta + z * se
    return PairedResult(n, base_mean, base_mean + delta, delta, lo, hi, p, mde(sd, n, alpha, power), sd, False)
