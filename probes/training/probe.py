"""The training probes: logs (TRN) and training configs (CFG)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding, Severity
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.rules import DOC_UNREADABLE, DOC_UNSAFE_PICKLE
from probes.training import analyze
from probes.training import recipe as rc
from probes.training.cfgrules import check_recipe
from probes.training.readers import read_log
from probes.training.readers.hf import _CKPT, newest_state
from probes.training.rules import CFG_NOT_RUN, CFG_PICKLE_CODE, CFG_RULES, RULES


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
        r, _ = rc.read_bin(a.path) if a.path.suffix == ".bin" else rc.read_config_file(a.path)
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
                # HF's TensorBoard callback: same run as its trainer_state.json (top-level or in the
                # checkpoints of a plain Trainer folder), read once
                state = up / "trainer_state.json"
                if not state.is_file():
                    ckpts = [c for c in up.glob("checkpoint-*/trainer_state.json") if _CKPT.match(c.parent.name)]
                    state = max(ckpts, key=lambda c: int(c.parent.name.split("-")[1]), default=state)
                if state.is_file():
                    artifact.facts.update({"format": "tensorboard", "same_run_as": str(state)})
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
            yield from self._check_bin(artifact, ctx)
            return
        r, problem = rc.read_config_file(artifact.path)
        if r is None:
            yield DOC_UNREADABLE.finding(
                artifact.path, f"{artifact.path.name}: {problem}", evidence={"reason": problem}
            )
            return
        artifact.facts.update({"format": r.get("flavour"), "recipe": r, "method": r.get("method", "unknown")})
        yield from self._recipe_findings(artifact, r, ctx)

    def _check_bin(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        """training_args.bin through the restricted unpickler: fields -> the config rules; a payload that
        would run code -> CFG008 (nothing runs); a damaged file -> DOC004 info (not loaded)."""
        path = artifact.path
        r, scan = rc.read_bin(path)
        artifact.facts.update({"format": "pickle", "layout": scan.layout, "loaded": False, "globals": scan.globals})
        if scan.unsafe:
            artifact.facts["unsafe_calls"] = scan.unsafe
            yield CFG_PICKLE_CODE.finding(
                path,
                f"{path.name} would call {'; '.join(scan.unsafe[:3])}"
                f"{f' (+{len(scan.unsafe) - 3} more)' if len(scan.unsafe) > 3 else ''} when loaded with "
                "torch.load; read without executing anything, nothing was run",
                evidence={"calls": scan.unsafe[:20], "layout": scan.layout},
                severity=None if scan.dangerous else Severity.WARNING,
            )
            return
        if r is None:
            yield DOC_UNSAFE_PICKLE.finding(
                path,
                f"{path.name} could not be read safely ({scan.problem}{f' at {scan.where}' if scan.where else ''}); "
                "not loaded. Its settings are read from training_args.json / the manifest's [recipe] when present",
                evidence={"reason": scan.problem},
            )
            return
        artifact.facts.update({"format": r["flavour"], "class": scan.class_name, "recipe": r})
        artifact.facts["method"] = r.get("method", "unknown")
        if (path.parent / "training_args.json").is_file():
            return  # the same run's arguments as JSON: its findings are reported there
        yield from self._recipe_findings(artifact, r, ctx)

    def _recipe_findings(self, artifact: Artifact, r: dict[str, Any], ctx: ProbeContext) -> Iterable[Finding]:
        seen = self._seen.setdefault(ctx.rollout.root, set())
        if not r.get("method") and ctx.rollout.manifest:  # HF args do not say QLoRA; the manifest does
            method = rc.from_manifest(ctx.rollout.manifest).get("method")
            if method:
                r = {**r, "method": method}
        for rule, msg, ev, sev in check_recipe(r, ctx.param):
            seen.add(rule.id)
            yield rule.finding(
                artifact.path, msg, locator=r.get("flavour", ""), evidence=ev, severity=Severity(sev) if sev else None
            )

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        yield from self._not_run(rollout)
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

    def _not_run(self, rollout: Rollout) -> Iterable[Finding]:
        """CFG009 (info) when the rollout has a training log but no recipe: say which rules did not run."""
        logs = [a for a in rollout.of_kind("training_log") if "superseded_by" not in a.facts]
        if not logs or set(rollout_recipe(rollout)) - {"source", "flavour"}:
            return
        configs = rollout.of_kind("training_config")
        # Said for a run folder (Trainer checkpoints, a config that failed, a manifest), not for a log
        # file checked on its own, where no config was to be expected.
        run_folder = any(_CKPT.match(a.path.parent.name) or any(a.path.parent.glob("checkpoint-*")) for a in logs)
        if not (configs or run_folder or rollout.of_kind("manifest")):
            return
        why = []
        for a in configs:
            if a.facts.get("unsafe_calls"):
                reason = "would run code when loaded (CFG008)"
            elif a.facts.get("recipe") is None:
                reason = "could not be read"
            else:
                reason = "holds no training settings"
            why.append(f"{a.path.name} {reason}")
        looked = "; ".join(why) or (
            "no training_args.json, training_args.bin, axolotl / LLaMA-Factory YAML or rollout.toml [recipe] found"
        )
        ids = ", ".join(rule.id for rule in CFG_RULES if rule not in (CFG_PICKLE_CODE, CFG_NOT_RUN))
        yield CFG_NOT_RUN.finding(
            logs[0].path,
            f"config rules {ids} (learning rate, warmup, precision, quantization, clipping) could not run for "
            f"this run: {looked}",
            evidence={"rules": ids.split(", "), "configs": [str(a.path) for a in configs]},
        )


PROBES = [TrainingLogProbe(), TrainingConfigProbe()]
