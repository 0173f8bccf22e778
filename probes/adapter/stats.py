"""Per-module numerics from the small LoRA factors only (never the dense d_out x d_in product).

For ΔW = s·B·A with A [r, in], B [out, r]:

* ‖ΔW‖_F² = s²·trace((BᵀB)(AAᵀ)) = s²·Σ (BᵀB ⊙ AAᵀ)  (both Gram matrices are r x r and symmetric).
* Singular values: with AAᵀ = L Lᵀ (Cholesky), the eigenvalues of Lᵀ(BᵀB)L are σ_i²(B·A).
  This is the "QR of the factors, then r x r SVD" method with R_AᵀR_A = AAᵀ: R is never formed, because
  a Gram matrix is one BLAS call (~1 ms for 11008 x 64) where numpy's tall-skinny QR measured ~0.6-1 s
  here. The Grams are accumulated in float32 and the r x r algebra runs in float64; squaring the
  condition number only blurs singular values below ~1e-3·σ_max, which do not move the ranks below.
* Effective rank, two numbers per module:
  - `effective_rank`: exp(entropy of σ/Σσ) (Roy & Vetterli 2007) — a continuous "how many directions".
  - `rank90`: the fewest directions holding 90 % of the energy Σσ². The rank-underuse rule uses
    rank90 (it answers "which r would keep 90 % of this update").
* Non-finite values: any NaN/Inf in a factor makes the diagonal of its Gram non-finite (squares are
  never negative, so nothing cancels). Only then is the tensor counted value by value, so the common
  clean case costs no extra pass. A finite fp32 value large enough to overflow the Gram is recounted
  exactly (0 non-finite) and its Gram recomputed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class FactorStats:
    gram: np.ndarray | None  # r x r float64, None when non-finite
    non_finite: int
    numel: int


def factor_stats(x: np.ndarray, rows_are_rank: bool) -> FactorStats:
    """Gram matrix over the rank axis: A [r, in] → AAᵀ; B [out, r] → BᵀB."""
    g = x @ x.T if rows_are_rank else x.T @ x
    if np.isfinite(np.trace(g)):
        return FactorStats(g.astype(np.float64), 0, x.size)
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        return FactorStats(None, bad, x.size)
    x64 = x.astype(np.float64)
    g = x64 @ x64.T if rows_are_rank else x64.T @ x64
    return FactorStats(g, 0, x.size)


def non_finite_count(x: np.ndarray) -> int:
    s = float(np.sum(x, dtype=np.float64)) if x.size else 0.0
    if math.isfinite(s):
        return 0
    return int(x.size - np.count_nonzero(np.isfinite(x)))


@dataclass
class ModuleNumbers:
    update_norm: float  # ‖s·B·A‖_F
    b_norm: float  # ‖B‖_F
    a_norm: float  # ‖A‖_F
    singular: np.ndarray  # σ of B·A (unscaled), descending
    effective_rank: float
    rank90: int
    experts: int = 1


def module_numbers(ga: np.ndarray, gb: np.ndarray, scale: float, experts: int = 1) -> ModuleNumbers:
    """Numbers of ΔW = scale·B·A. With `experts` = E > 1 (PEFT's ParamWrapper over a stacked [E, out, in]
    parameter) A is [E·r, in] with expert e in rows e·r…e·r+r-1 and B is [out, E·r] with expert e in columns
    e, e+E, e+2E, … (peft reshapes A to [E, r, in] and B to [out, r, E]). Each expert's update is then
    measured on its own Gram blocks: update_norm is the norm of the whole stack (√Σ‖ΔW_e‖²), effective_rank
    the mean over experts, and `singular`/rank90 those of the expert with the largest rank90."""
    if experts > 1 and ga.shape[0] % experts == 0 and ga.shape[0] > experts:
        r = ga.shape[0] // experts
        per = [
            module_numbers(ga[e * r : (e + 1) * r, e * r : (e + 1) * r], gb[e::experts, e::experts], scale)
            for e in range(experts)
        ]
        top = max(per, key=lambda n: (n.rank90, n.update_norm))
        return ModuleNumbers(
            update_norm=math.sqrt(sum(n.update_norm**2 for n in per)),
            b_norm=math.sqrt(sum(n.b_norm**2 for n in per)),
            a_norm=math.sqrt(sum(n.a_norm**2 for n in per)),
            singular=top.singular,
            effective_rank=sum(n.effective_rank for n in per) / experts,
            rank90=top.rank90,
            experts=experts,
        )
    ga = (ga + ga.T) * 0.5
    gb = (gb + gb.T) * 0.5
    sq = max(float(np.sum(ga * gb)), 0.0)
    # AAᵀ = L Lᵀ (Cholesky, with a 1e-12 relative jitter so a rank-deficient A still factors);
    # σ²(B·A) = eig(Lᵀ BᵀB L). eigh with eigenvectors measured 10-200 ms per 64x64 call under CPU
    # contention here, Cholesky 0.02 ms.
    r = ga.shape[0]
    jitter = 1e-12 * max(float(np.trace(ga)) / max(r, 1), 1e-300)
    try:
        low = np.linalg.cholesky(ga + jitter * np.eye(r))
    except np.linalg.LinAlgError:
        lam, v = np.linalg.eigh(ga)
        low = v * np.sqrt(np.clip(lam, 0.0, None))
    m = low.T @ gb @ low
    sig2 = np.clip(np.linalg.eigvalsh((m + m.T) * 0.5), 0.0, None)[::-1]
    sig = np.sqrt(sig2)
    return ModuleNumbers(
        update_norm=abs(scale) * math.sqrt(sq),
        b_norm=math.sqrt(max(float(np.trace(gb)), 0.0)),
        a_norm=math.sqrt(max(float(np.trace(ga)), 0.0)),
        singular=sig,
        effective_rank=effective_rank(sig),
        rank90=energy_rank(sig, 0.9),
    )


def effective_rank(sig: np.ndarray) -> float:
    total = float(sig.sum())
    if total <= 0 or not math.isfinite(total):
        return 0.0
    p = sig[sig > 0] / total
    return float(math.exp(-float(np.sum(p * np.log(p)))))


def energy_rank(sig: np.ndarray, share: float) -> int:
    e = sig.astype(np.float64) ** 2
    total = float(e.sum())
    if total <= 0 or not math.isfinite(total):
        return 0
    return int(np.searchsorted(np.cumsum(e) / total, share - 1e-12) + 1)
