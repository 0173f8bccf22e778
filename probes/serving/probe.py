"""The serving probe: per config (parse + config-only rules) and per rollout (config × adapter × base).

The probe prepares what the checks look at (probes.serving.subjects) and runs the family's CheckSet on
it: one registered check per SRV rule (probes/serving/checks/). At rollout scope it then keeps the
compatibility matrix on the serving-config artifacts (probes.serving.matrix).
"""

from __future__ import annotations

from collections.abc import Iterable

from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext, Rollout
from probes.serving import rules as R
from probes.serving.checks import compat, configs, lineage, paths, routes, servers, silent  # noqa: F401 (register)
from probes.serving.matrix import rollout_matrix
from probes.serving.rules import CHECKS
from probes.serving.subjects import prepare_rollout, read_config

__all__ = ["ServingProbe"]


class ServingProbe(Probe):
    name = "serving"
    kinds = frozenset({"serving_config"})
    rules = R.RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        subject = read_config(artifact, ctx)
        artifact.facts.update(subject.facts())
        return CHECKS.run("artifact", subject, ctx)

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        subject = prepare_rollout(rollout, ctx)
        findings = CHECKS.run("rollout", subject, ctx)
        rollout_matrix(subject, ctx)
        return findings
