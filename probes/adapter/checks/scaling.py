"""How strongly the update is applied: the alpha/r (rsLoRA alpha/√r) scale (ADP010) and DoRA magnitudes
(ADP011)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.adapter.rules import CHECKS, DORA, SCALING

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


@CHECKS(SCALING, scope="artifact")
def scaling(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    cfg = sc.config
    if cfg is None or not cfg.r or cfg.alpha is None or cfg.r <= 0:
        return []
    hi, lo = float(ctx.param(SCALING, "max_scale")), float(ctx.param(SCALING, "min_scale"))
    out = []
    pairs = {("", cfg.r, cfg.alpha)}
    for m in sc.modules:
        rr, aa = cfg.rank_for(m), cfg.alpha_for(m)
        if rr and aa is not None and (rr, aa) != (cfg.r, cfg.alpha):
            pairs.add((m, rr, aa))
    formula = "alpha/√r (use_rslora)" if cfg.use_rslora else "alpha/r"
    for where, rr, aa in sorted(pairs, key=lambda p: p[0]):
        s = aa / math.sqrt(rr) if cfg.use_rslora else aa / rr
        ev = {"r": rr, "alpha": aa, "scale": s, "use_rslora": cfg.use_rslora}
        label = f"{where}: " if where else ""
        if s > hi:
            extra = (
                f"; with rsLoRA the classic alpha = {aa:g} acts like alpha/r = {aa * math.sqrt(rr) / rr:.3g}·√r"
                if cfg.use_rslora and aa >= rr
                else ""
            )
            out.append(
                SCALING.finding(
                    sc.config_path,
                    f"{label}scale {formula} = {aa:g}/{_den(rr, cfg.use_rslora)} = {s:.3g} > "
                    f"{hi:g}{extra}",
                    locator=f"/{'alpha_pattern' if where else 'lora_alpha'}", evidence=ev,
                )
            )  # fmt: skip
        elif s < lo:
            out.append(
                SCALING.finding(
                    sc.config_path,
                    f"{label}scale {formula} = {aa:g}/{_den(rr, cfg.use_rslora)} = {s:.3g} < "
                    f"{lo:g}: the update is nearly switched off",
                    locator=f"/{'alpha_pattern' if where else 'lora_alpha'}", evidence=ev,
                )
            )  # fmt: skip
        if len(out) >= 5:
            break
    return out


def _den(r: int, rs: bool) -> str:
    return f"√{r}" if rs else str(r)


@CHECKS(DORA, scope="artifact")
def dora(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    cfg = sc.config
    if cfg is None or not sc.tensors:
        return []
    lora_mods = [m for m in sc.modules.values() if "A" in m.tensors]
    with_mag = [m for m in lora_mods if "magnitude" in m.tensors]
    out = []
    if cfg.use_dora and len(with_mag) < len(lora_mods):
        out.append(
            DORA.finding(
                sc.weights,
                f"use_dora is true but {len(lora_mods) - len(with_mag)} of {len(lora_mods)} LoRA modules have "
                f"no lora_magnitude_vector",
            )
        )
    if not cfg.use_dora and with_mag:
        out.append(
            DORA.finding(
                sc.config_path,
                f"{len(with_mag)} modules carry lora_magnitude_vector (DoRA) but use_dora is false: loaders "
                f"will ignore them",
                locator="/use_dora",
            )
        )
    bad = {k: v for k, v in sc.magnitudes.items() if v[1] > 0}
    if bad:
        k, (mn, cnt) = next(iter(bad.items()))
        out.append(
            DORA.finding(
                sc.weights,
                f"{len(bad)} magnitude vectors have entries ≤ 0 (e.g. {k}: {cnt} entries, min {mn:.4g}); DoRA "
                f"magnitudes are column norms and must be > 0",
                locator=k,
                severity=Severity.WARNING,
            )
        )
    return out
