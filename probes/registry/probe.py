"""REG rules: the adapter registry's own integrity, and the registry against what the servers route.

The probe prepares what the checks look at (probes/registry/subject.py) and runs the family's checks,
one per rule: probes/registry/integrity.py per registry file, probes/registry/routing.py per rollout,
probes/registry/drift.py (REG004) at both.

Per registry file, the disk work per entry (adapter folder present, adapter_config.json + safetensors
header, sha256 of the weights) runs in a process pool when the registry has at least `parallel_min`
entries (REG007 params: parallel_min = 256, workers = 0 → all cores). Disabling REG004 skips hashing,
so a large registry is then checked from headers and configs only.
"""

from __future__ import annotations

from collections.abc import Iterable

from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext, Rollout
from probes.registry import drift, integrity, routing  # noqa: F401  (register the family's checks)
from probes.registry.rules import CHECKS, RULES
from probes.registry.subject import prepare_file, prepare_routing

__all__ = ["PROBES", "RegistryProbe"]


class RegistryProbe(Probe):
    name = "registry"
    kinds = frozenset({"registry"})
    rules = RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        subject = prepare_file(artifact, ctx)
        findings = CHECKS.run("artifact", subject, ctx)
        artifact.facts.update(subject.facts())
        return findings

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        return CHECKS.run("rollout", prepare_routing(rollout, ctx), ctx)


PROBES = [RegistryProbe()]
