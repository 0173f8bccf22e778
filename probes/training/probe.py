"""The training probes: logs (TRN) and training configs (CFG)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from doctor.model import Artifact, Finding, Severity
from doctor.probe import Probe, ProbeContext, Rollout
from doctor.rules import DOC_UNREADABLE, DOC_UNSAFE_PICKLE
from probes.training import analyze
from probes.training import recipe as rc
from probes.training.cfgrules import check_recipe
from probes.training.readers import read_log
from probes.training.readers.hf import newest_state
from probes.training.rules import RULES


def column_overrides(ctx: ProbeContext) -> dict[str, str]:
    cols = ctx.section("training").get("columns", {})
    return {k: str(v) for k, v in cols.items()} if isinstance(cols, dict) else {}


def rollout_recipe(rollout: Rollout) -> dict[str, Any]:
    """Config artifacts of the rollout (JSON/YAML) first, then the manifest's [recipe]."""
    cached = getattr(rollout, "_training_recipe", None)
    if cached is not None:
        return cached
    recipes = []
    for a in rollout.of_kind("training_config"):
        if a.path.suffix != ".bin":
            r, _ = rc.read_config_file(a.path)
            if r:
                recipes.append(r)
    recipes.append(rc.from_manifest(rollout.manifest))
    out = rc.merged(recipes)
    rollout._training_recipe = out  # type: ignore[attr-defined]
    return out


class TrainingLogProbe(Probe):
    name = "training"
    kinds = frozenset({"training_log"})
    rules = RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        path = artifact.path
        if path.name == "trainer_state.json":
            newest, _cands = newest_state(path)
            top = path.parent / "trainer_state.json" == path and not path.parent.name.startswith("checkpoint-")
            if newest != path and not top:
                artifact.facts.update({"format": "hf_trainer_state", "superseded_by": str(newest)})
                return
            if newest != path:
                artifact.facts["read_from"] = str(newest)
                path = newest
        if path.name.startswith("events.out.tfevents"):
            for up in list(path.parents)[:3]:
                if (up / "trainer_state.json").is_file():  # HF's TensorBoard callback: same run, read once
                    artifact.facts.update({"format": "tensorboard", "same_run_as": str(up / "trainer_state.json")})
                    return
        recipe = rollout_recipe(ctx.rollout)
        runs = read_log(path, column_overrides(ctx))
        many = len(runs) > 1
        for run_path, s in runs:
            f = analyze.facts(s, recipe)
            if many:
                artifact.facts.setdefault("runs", {})[run_path.name] = f
            else:
                artifact.facts.update(f)
            prefix = f"run {run_path.name} " if many else ""
            yield from analyze.findings(run_path if many else path, s, recipe, ctx.param, prefix)


class TrainingConfigProbe(Probe):
    name = "training-config"
    kinds = frozenset({"training_config"})
    rules = ()

    def __init__(self) -> None:
        self._seen: dict[Path, set[str]] = {}

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        if artifact.path.suffix == ".bin":
            artifact.facts.update({"format": "pickle", "loaded": False})
            yield DOC_UNSAFE_PICKLE.finding(
                artifact.path,
                f"{artifact.path.name} is a pickle (TrainingArguments); not loaded. "
                "Its settings are read from training_args.json / the manifest's [recipe] when present",
            )
            return
        r, problem = rc.read_config_file(artifact.path)
        if r is None:
            yield DOC_UNREADABLE.finding(
                artifact.path, f"{artifact.path.name}: {problem}", evidence={"reason": problem}
            )
            return
        artifact.facts.update({"format": r.get("flavour"), "recipe": r, "method": r.get("method", "unknown")})
        seen = self._seen.setdefault(ctx.rollout.root, set())
        for rule, msg, ev, sev in check_recipe(r, ctx.param):
            seen.add(rule.id)
            yield rule.finding(
                artifact.path, msg, locator=r.get("flavour", ""), evidence=ev, severity=Severity(sev) if sev else None
            )

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        r = rc.from_manifest(rollout.manifest)
        if len(r) <= 2:
            return
        manifests = rollout.of_kind("manifest")
        path = manifests[0].path if manifests else rollout.root / "rollout.toml"
        seen = self._seen.pop(rollout.root, set())
        for rule, msg, ev, sev in check_recipe(r, ctx.param):
            if rule.id in seen:
                continue  # already reported on the run's own config file
            yield rule.finding(
                path, f"[recipe] {msg}", locator="recipe", evidence=ev, severity=Severity(sev) if sev else None
            )


PROBES = [TrainingLogProbe(), TrainingConfigProbe()]
