"""The checkpoint as files: pickles beside or instead of safetensors (ADP002), integrity (ADP001), config
fields (ADP003)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.adapter.applicability import describe
from probes.adapter.rules import BAD_CONFIG, CHECKS, UNREADABLE, UNSAFE

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


@CHECKS(UNSAFE, scope="artifact")
def unsafe(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    if not sc.pickles:
        return []
    names = ", ".join(p.name for p in sc.pickles)
    if sc.weights is not None:
        return [
            UNSAFE.finding(
                sc.pickles[0],
                f"{names} (pickle, not loaded) sits beside {sc.weights.name}; loaders that prefer the pickle "
                "may read different weights",
                severity=Severity.INFO,
            )
        ]
    size = sum(p.stat().st_size for p in sc.pickles)
    return [
        UNSAFE.finding(
            sc.pickles[0], f"{names} is a pickle ({size} bytes); it was not loaded, so its weights were not checked"
        )
    ]


@CHECKS(UNREADABLE, scope="artifact")
def unreadable(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    return [
        UNREADABLE.finding(
            p.file, f"{p.file.name}: {p.reason}" + (f" at {p.where}" if p.where else ""), locator=p.where
        )
        for p in sc.problems
    ]


@CHECKS(BAD_CONFIG, scope="artifact")
def config_fields(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    """Each field issue read_config found; a tuner other than LoRA gets the note of which checks apply."""
    if sc.config is None:
        return []
    return [
        BAD_CONFIG.finding(
            sc.config_path,
            f"{i.message}; {describe(sc.config.tuner)}" if i.kind == "tuner" else i.message,
            locator=f"/{i.field}",
            severity=Severity.parse(i.severity),
        )
        for i in sc.config.issues
    ]
