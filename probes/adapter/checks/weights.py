"""What the saved numbers say: NaN/Inf (ADP006), lora_B still zero (ADP007), one layer's update far above
the others (ADP008), a rank far above what the update uses (ADP009, once per training run)."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.adapter.rules import CHECKS, DEAD, NON_FINITE, OUTLIER, UNDERUSED
from probes.adapter.stats import energy_rank
from probes.adapter.text import listed

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


@CHECKS(NON_FINITE, scope="artifact")
def non_finite(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    if not sc.non_finite:
        return []
    items = sorted(sc.non_finite.items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in items)
    desc = [f"{k} ({v} of {sc.tensors[k].numel})" for k, v in items]
    return [
        NON_FINITE.finding(
            sc.weights,
            f"{len(items)} of {len(sc.tensors)} tensors hold {total} non-finite values: {listed(desc, 4)}",
            locator=items[0][0],
            evidence={"tensors": {k: v for k, v in items[:200]}, "total": total},
        )
    ]


@CHECKS(DEAD, scope="artifact")
def dead(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    rms_tol = float(ctx.param(DEAD, "rms"))
    rows = []
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is None or sc.rank_of(m) == 0:  # AdaLoRA's budget can prune a module to rank 0: not dead
            continue
        # Linear LoRA starts with B = 0; embedding LoRA starts with lora_embedding_A = 0; AdaLoRA with E = 0
        # (its A and B are random), so there the update itself (E folded in) is what stays ≈ 0.
        if "E" in m.tensors:
            key, norm = m.tensors.get("B"), n.update_norm
        elif "B" in m.tensors:
            key, norm = m.tensors.get("B"), n.b_norm
        else:
            key, norm = m.tensors.get("emb_A"), n.a_norm
        if key is None:
            continue
        rows.append((m.path, norm / math.sqrt(max(sc.tensors[key].numel, 1))))
    if not rows:
        return []
    dead_mods = [p for p, rms in rows if rms <= rms_tol]
    if not dead_mods:
        return []
    all_dead = len(dead_mods) == len(rows)
    msg = (
        f"lora_B is ≈ 0 in all {len(rows)} modules (RMS ≤ {rms_tol:g}): the adapter is a no-op — never trained, "
        f"or gradients never reached it"
        if all_dead
        else f"lora_B is ≈ 0 (RMS ≤ {rms_tol:g}) in {len(dead_mods)} of {len(rows)} modules: {listed(dead_mods)}"
    )
    return [
        DEAD.finding(
            sc.weights,
            msg,
            locator=dead_mods[0],
            severity=None if all_dead else Severity.WARNING,
            evidence={"dead": len(dead_mods), "modules": len(rows), "b_rms": {p: r for p, r in rows[:300]}},
        )
    ]


@CHECKS(OUTLIER, scope="artifact")
def outliers(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    factor = float(ctx.param(OUTLIER, "factor"))
    min_layers = int(ctx.param(OUTLIER, "min_layers"))
    by_target: dict[str, list[tuple[int, str, float]]] = {}
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is not None and m.layer is not None:
            by_target.setdefault(sc.label(m), []).append((m.layer, m.path, n.update_norm))
    out = []
    for target, rows in sorted(by_target.items()):
        if len(rows) < min_layers:
            continue
        rows.sort()
        med = statistics.median(r[2] for r in rows)
        if med <= 0:
            continue
        bad = [(layer, p, v) for layer, p, v in rows if v > factor * med]
        if not bad:
            continue
        worst = max(bad, key=lambda r: r[2])
        out.append(
            OUTLIER.finding(
                sc.weights,
                f"{target}: update norm {worst[2]:.4g} in layer {worst[0]} is {worst[2] / med:.1f}x the median "
                f"{med:.4g} over {len(rows)} layers ({len(bad)} layers above {factor:g}x)",
                locator=worst[1],
                evidence={
                    "module": target,
                    "layers": [r[0] for r in rows],
                    "update_norm": [r[2] for r in rows],
                    "median": med,
                },
            )
        )
    return out


@CHECKS(UNDERUSED, scope="artifact")
def underused(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    return _once_per_run(_underused(sc, ctx), sc.given or sc.folder, ctx)


def _underused(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    share = float(ctx.param(UNDERUSED, "share"))
    min_r = int(ctx.param(UNDERUSED, "min_r"))
    energy = float(ctx.param(UNDERUSED, "energy"))
    rows = []
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is None or n.update_norm == 0 or not len(n.singular):
            continue
        rows.append((m.path, len(n.singular), energy_rank(n.singular, energy), n.effective_rank))
    if not rows:
        return []
    r = max(row[1] for row in rows)
    if r < min_r:
        return []
    med_k = statistics.median(row[2] for row in rows)
    if med_k > share * r:
        return []
    p2 = 1 << max(0, math.ceil(math.log2(max(1, max(row[2] for row in rows)))))
    return [
        UNDERUSED.finding(
            sc.weights,
            f"median {energy:.0%}-energy rank is {med_k:g} of r = {r} over {len(rows)} modules "
            f"(max {max(row[2] for row in rows)}, median entropy rank "
            f"{statistics.median(row[3] for row in rows):.1f}); "
            f"r = {p2} would keep {energy:.0%} of every module's update",
            evidence={
                "r": r,
                "median_rank": med_k,
                "modules": [row[0] for row in rows[:300]],
                "rank_energy": [row[2] for row in rows[:300]],
                "effective_rank": [round(row[3], 3) for row in rows[:300]],
            },
        )
    ]


def _once_per_run(found: list[Finding], folder: Path, ctx: ProbeContext) -> list[Finding]:
    """ADP009 once per training run: checkpoint-N folders (and the final adapter beside them) fold into
    the first finding, which lists them all, instead of one copy per checkpoint. The first finding is kept
    in the rollout's scratch space (ctx.shared, one per rollout) and extended in place."""
    if not found:
        return found
    run = folder.parent if re.fullmatch(r"checkpoint-\d+", folder.name) else folder
    first = ctx.shared.setdefault("adp009", {}).get(run)
    entry = {"path": folder.name, "median_rank": found[0].evidence.get("median_rank"), "r": found[0].evidence.get("r")}
    if first is None:
        found[0].evidence["checkpoints"] = [entry]
        ctx.shared["adp009"][run] = found[0]
        return found
    first.evidence["checkpoints"].append(entry)
    names = [c["path"] for c in first.evidence["checkpoints"]]
    first.message = first.message.split(" — in ")[0] + f" — in {len(names)} checkpoints: {', '.join(names)}"
    return []
