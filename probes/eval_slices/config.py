"""What the settings ([eval]) and the manifest (rollout.toml [eval]) say about a rollout's eval: the
baseline variant, the variant of a file without a variant column, and the statistics' options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.manifest import resolve
from doctor.core.probe import ProbeContext, Rollout
from probes.eval_slices import rules as R

if TYPE_CHECKING:
    from probes.eval_slices.compare import Options


def manifest_eval(rollout: Rollout) -> dict[str, Any]:
    ev = rollout.manifest.get("eval", {}) if rollout.manifest else {}
    return ev if isinstance(ev, dict) else {}


def baseline_name(rollout: Rollout, section: dict[str, Any]) -> str | None:
    """Explicitly configured baseline variant: settings first, then the manifest."""
    for src in (section, manifest_eval(rollout)):
        v = src.get("baseline_variant")
        if isinstance(v, str) and v:
            return v
    return None


def default_variant(path: Path, rollout: Rollout, section: dict[str, Any]) -> str | None:
    """Variant name for rows with no variant column: the manifest's baseline file is the baseline."""
    base_file = resolve(rollout.root, manifest_eval(rollout).get("baseline"))
    if base_file is not None and base_file.resolve() == path.resolve():
        return baseline_name(rollout, section) or "base"
    return None


def options(ctx: ProbeContext, rollout: Rollout | None = None) -> Options:
    from probes.eval_slices.compare import Options

    section = ctx.section("eval")
    safety = section.get("safety_slices")
    perf = manifest_eval(rollout).get("perf", {}) if rollout is not None else {}
    return Options(
        alpha=float(ctx.param(R.SLICE_REGRESSION, "alpha")),
        min_effect=float(ctx.param(R.SLICE_REGRESSION, "min_effect")),
        resamples=int(ctx.param(R.SLICE_REGRESSION, "resamples")),
        correction=str(ctx.param(R.SLICE_REGRESSION, "correction")),
        power=float(ctx.param(R.SLICE_REGRESSION, "power")),
        min_n=int(ctx.param(R.INSUFFICIENT, "min_n")),
        max_mde=float(ctx.param(R.INSUFFICIENT, "max_mde")),
        min_refusal_drop=float(ctx.param(R.SAFETY_REGRESSION, "min_drop")),
        min_over_refusal=float(ctx.param(R.OVER_REFUSAL, "min_rise")),
        seed=int(section.get("seed", 0)),
        safety_slices=tuple(str(s) for s in safety) if isinstance(safety, list) else None,
        perf={str(k): dict(v) for k, v in perf.items() if isinstance(v, dict)} if isinstance(perf, dict) else {},
    )
