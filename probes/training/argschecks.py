"""training_args.bin's own rules, on what the restricted unpickler (readers/trainingargs.py) recovered:
CFG008 when loading it would run code, DOC004 when it could not be read safely at all (not loaded). The
fields it holds go to the recipe checks (cfgrules.py) like any other config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.checks import DOC_CHECKS
from doctor.core.model import Finding, Severity
from doctor.core.rules import DOC_UNSAFE_PICKLE
from probes.training.rules import CFG_PICKLE_CODE, CHECKS

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext
    from probes.training.readers.trainingargs import ArgsScan


@dataclass
class ArgsBin:
    """A training_args.bin as scanned (nothing imported or called) and the recipe its fields make, if any."""

    path: Path
    scan: ArgsScan
    recipe: dict[str, Any] | None


@CHECKS(CFG_PICKLE_CODE, scope="artifact")
def would_run_code(subject: ArgsBin, ctx: ProbeContext | None = None) -> list[Finding]:
    """Calls a TrainingArguments pickle never makes; an error for a known code-running call, else a warning."""
    scan, path = subject.scan, subject.path
    if not scan.unsafe:
        return []
    more = f" (+{len(scan.unsafe) - 3} more)" if len(scan.unsafe) > 3 else ""
    return [
        CFG_PICKLE_CODE.finding(
            path,
            f"{path.name} would call {'; '.join(scan.unsafe[:3])}{more} when loaded with "
            "torch.load; read without executing anything, nothing was run",
            evidence={"calls": scan.unsafe[:20], "layout": scan.layout},
            severity=None if scan.dangerous else Severity.WARNING,
        )
    ]


@DOC_CHECKS(DOC_UNSAFE_PICKLE, scope="artifact")
def not_loaded(subject: ArgsBin, ctx: ProbeContext | None = None) -> list[Finding]:
    """DOC004 (info): a damaged or unrecognised pickle yielded no fields; it was not loaded."""
    scan, path = subject.scan, subject.path
    if scan.unsafe or subject.recipe is not None:
        return []
    at = f" at {scan.where}" if scan.where else ""
    return [
        DOC_UNSAFE_PICKLE.finding(
            path,
            f"{path.name} could not be read safely ({scan.problem}{at}); "
            "not loaded. Its settings are read from training_args.json / the manifest's [recipe] when present",
            evidence={"reason": scan.problem},
        )
    ]
