"""The training probes: logs (TRN) and training configs (CFG). Each prepares its subject once (a run's
series, a recipe, a scanned training_args.bin) and runs the family's checks on it (rules.CHECKS)."""

from __future__ import annotations

from collections.abc import Iterable

from doctor.core.checks import DOC_CHECKS
from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext, Rollout
from doctor.core.rules import DOC_UNSAFE_PICKLE
from probes.training import analyze
from probes.training import recipe as rc
from probes.training.argschecks import ArgsBin
from probes.training.cfgrules import RecipeSubject, run_recipe_checks
from probes.training.logchecks import report_unreadable, run_log_checks
from probes.training.logsubject import LogSubject
from probes.training.readers import read_log
from probes.training.readers.hf import _CKPT, newest_state
from probes.training.rules import CFG_PICKLE_CODE, CHECKS, RULES

# CFG rule ids already said on one of the rollout's config files (not said again for the manifest's [recipe]).
_REPORTED = "training.cfg_reported"


def column_overrides(ctx: ProbeContext) -> dict[str, str]:
    cols = ctx.section("training").get("columns", {})
    return {k: str(v) for k, v in cols.items()} if isinstance(cols, dict) else {}


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
        recipe = rc.rollout_recipe(ctx)
        runs = read_log(path, column_overrides(ctx))
        many = len(runs) > 1
        for run_path, s in runs:
            f = analyze.facts(s, recipe)
            if many:
                artifact.facts.setdefault("runs", {})[run_path.name] = f
            else:
                artifact.facts.update(f)
            prefix = f"run {run_path.name} " if many else ""
            subject = LogSubject(run_path if many else path, s, recipe, ctx.param, prefix)
            report_unreadable(subject, ctx)
            yield from run_log_checks(subject, ctx)


class TrainingConfigProbe(Probe):
    name = "training-config"
    kinds = frozenset({"training_config"})
    rules = ()

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        if artifact.path.suffix == ".bin":
            yield from self._check_bin(artifact, ctx)
            return
        r, (problem, where) = rc.config_of(ctx, artifact.path)
        if r is None:
            ctx.unreadable(artifact.path, problem, where)
            return
        artifact.facts.update({"format": r.get("flavour"), "recipe": r, "method": r.get("method", "unknown")})
        yield from self._recipe_findings(artifact, r, ctx)

    def _check_bin(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        """training_args.bin through the restricted unpickler: fields -> the config rules; a payload that
        would run code -> CFG008 (nothing runs); a damaged file -> DOC004 info (not loaded)."""
        path = artifact.path
        r, scan = rc.config_of(ctx, path)
        artifact.facts.update({"format": "pickle", "layout": scan.layout, "loaded": False, "globals": scan.globals})
        subject = ArgsBin(path, scan, r)
        if scan.unsafe:
            artifact.facts["unsafe_calls"] = scan.unsafe
            yield from CHECKS.run("artifact", subject, ctx, applies=lambda rule: rule.id == CFG_PICKLE_CODE.id)
            return
        if r is None:
            yield from DOC_CHECKS.run("artifact", subject, ctx, applies=lambda rule: rule.id == DOC_UNSAFE_PICKLE.id)
            return
        artifact.facts.update({"format": r["flavour"], "class": scan.class_name, "recipe": r})
        artifact.facts["method"] = r.get("method", "unknown")
        if (path.parent / "training_args.json").is_file():
            return  # the same run's arguments as JSON: its findings are reported there
        yield from self._recipe_findings(artifact, r, ctx)

    def _recipe_findings(self, artifact: Artifact, r: dict, ctx: ProbeContext) -> Iterable[Finding]:
        reported = ctx.shared.setdefault(_REPORTED, set())
        if not r.get("method") and ctx.rollout.manifest:  # HF args do not say QLoRA; the manifest does
            method = rc.from_manifest(ctx.rollout.manifest).get("method")
            if method:
                r = {**r, "method": method}
        subject = RecipeSubject(artifact.path, r, ctx.param, locator=r.get("flavour", ""))
        for f in run_recipe_checks(subject, ctx):
            reported.add(f.rule)
            yield f

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        yield from CHECKS.run("rollout", rollout, ctx)
        r = rc.from_manifest(rollout.manifest)
        if len(r) <= 2:
            return
        manifests = rollout.of_kind("manifest")
        path = manifests[0].path if manifests else rollout.root / "rollout.toml"
        subject = RecipeSubject(path, r, ctx.param, locator="recipe", prefix="[recipe] ")
        # a rule already said on the run's own config file is not said again for the manifest
        yield from run_recipe_checks(subject, ctx, skip=ctx.shared.get(_REPORTED, set()))


PROBES = [TrainingLogProbe(), TrainingConfigProbe()]
