"""The adapter probe: one scan of the checkpoint, prepared once, then the ADP checks that apply to its tuner."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext
from doctor.core.safeio import require_readable
from probes.adapter import checks as _checks  # noqa: F401  (registers every ADP check on CHECKS)
from probes.adapter.applicability import applies, checks_fact
from probes.adapter.base_view import base_facts, plan_base, view_base
from probes.adapter.rules import CHECKS, RULES
from probes.adapter.scan import WEIGHT_NAMES, scan_adapter


def _sha_wanted(ctx: ProbeContext) -> bool | None:
    """sha256 of the weights: computed when a registry in the rollout may pin it, else only for small
    files ([adapter] sha256 = "always" | "never" | "auto" in settings)."""
    mode = str(ctx.section("adapter").get("sha256", "auto"))
    if mode == "always":
        return True
    if mode == "never":
        return False
    serving = (ctx.rollout.manifest or {}).get("serving", {})
    if ctx.rollout.of_kind("registry") or (isinstance(serving, dict) and serving.get("registry")):
        return True
    return None


class AdapterProbe(Probe):
    name = "adapter"
    kinds = frozenset({"adapter"})
    rules = RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        cancelled = ctx.cancelled.is_set if ctx.cancelled is not None else None
        for name in WEIGHT_NAMES:  # there but unreadable (permissions, a folder, a FIFO): DOC001, not a crash
            if os.path.lexists(artifact.path / name):
                require_readable(artifact.path / name)
        sc = scan_adapter(
            artifact.path, want_sha256=_sha_wanted(ctx), cancelled=cancelled, plan=lambda s: plan_base(s, ctx)
        )
        artifact.facts.update(sc.facts)
        sc.base_view = view_base(sc)
        if sc.base_view is not None:
            artifact.facts["base"] = base_facts(sc.base_view)
        tuner = sc.tuner  # IA3, LoHa, LoKr, …: only the checks that mean something for them
        out = CHECKS.run("artifact", sc, ctx, applies=lambda rule: applies(rule, tuner))
        artifact.facts["checks"] = checks_fact(tuner)
        artifact.facts["summary"] = summary(artifact.facts)
        return out


def summary(f: dict[str, Any]) -> str:
    """One line for `doctor inspect`: type, rank, alpha, scale, and how much of the base it adapts."""
    kind = str(f.get("peft_type") or "?")
    if f.get("use_dora"):
        kind += "+DoRA"
    parts = [f"{kind} r={f.get('r')}"]
    if f.get("alpha") is not None:
        parts.append(f"alpha={f['alpha']:g}")
    if f.get("scale") is not None:
        parts.append(f"scale={f['scale']:.4g} ({'alpha/√r, rsLoRA' if f.get('use_rslora') else 'alpha/r'})")
    if f.get("rank_pattern") or f.get("alpha_pattern"):
        parts.append(f"ranks {f.get('weight_ranks')}")
    line = ", ".join(parts)
    base = f.get("base") or {}
    if base.get("module_share") is not None:
        line += (
            f"; adapts {base['adapted_modules']} of {base['linear_modules']} linear modules "
            f"({base['module_share']:.0%}) of the {base.get('family')} base"
        )
        if base.get("adapted_parameters"):
            line += f" and {base['adapted_parameters']} expert/router parameters"
    elif base:
        line += "; base structure unknown (module share not computed)"
    if f.get("modules_to_save"):
        line += f"; saves {', '.join(f['modules_to_save'])} whole"
    return line


def adapter_facts(path: Path | str, *, sha256: bool | None = True) -> dict[str, Any]:
    """Facts of one adapter folder (the same dict the probe stores in artifact.facts, minus `base`)."""
    return scan_adapter(Path(path), want_sha256=sha256).facts


PROBES = [AdapterProbe()]
