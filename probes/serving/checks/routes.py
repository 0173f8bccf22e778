"""The routing layer (a LiteLLM `model_list`) against what the rollout's servers serve.

A route whose backend name is an adapter route is fine; one sent to a base model name under an adapter's
name answers with the base model (SRV026); one naming nothing served fails (SRV025). With no server config
in the rollout, SRV020 says so (probes.serving.checks.paths).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.serving import rules as R
from probes.serving.rules import CHECKS
from probes.serving.subjects import ServingRollout


def _routes(subject: ServingRollout) -> Iterator[tuple[Any, dict[str, Any], dict[str, Any]]]:
    """(router artifact, route, evidence) for each route, when the rollout has servers to check against."""
    if not subject.served:
        return
    for art in subject.routers:
        for r in art.facts["routes"]:
            ev = {"name": r["name"], "model": r["model"], "provider": r["provider"], "api_base": r["api_base"]}
            yield art, r, ev


@CHECKS(R.ROUTE_TO_BASE, scope="rollout")
def route_to_base_model(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    bases, adapters = subject.served_models
    manifest = subject.rollout.manifest or {}
    declared = {a.get("name") for a in manifest.get("adapters") or [] if isinstance(a, dict)}
    for art, r, ev in _routes(subject):
        if r["model"] in adapters or r["model"] not in bases:
            continue
        if r["name"] in adapters or r["name"] in declared:
            yield R.ROUTE_TO_BASE.finding(
                art.path,
                f"router sends {r['name']!r} to the base model {r['model']!r}, not to the adapter "
                f"route {r['name']!r}: every request is answered by the base model",
                locator=f"model_list: {r['name']}",
                evidence={**ev, "adapter_routes": sorted(adapters)},
                line=r["line"],
            )


@CHECKS(R.ROUTE_UNSERVED, scope="rollout")
def route_to_nothing_served(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    bases, adapters = subject.served_models
    for art, r, ev in _routes(subject):
        if r["model"] in adapters or r["model"] in bases:
            continue
        served = sorted(adapters | bases)
        yield R.ROUTE_UNSERVED.finding(
            art.path,
            f"router sends {r['name']!r} to {r['model']!r}, which no server in the rollout serves "
            f"(served: {', '.join(served[:6])})",
            locator=f"model_list: {r['name']}",
            evidence={**ev, "served": served[:20]},
            line=r["line"],
        )
