"""REG checks on the rollout (rollout scope): the registries against what the servers route."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.registry.rules import CHECKS, NOT_REGISTERED, NOT_SERVED, TOO_MANY
from probes.registry.subject import Routing


@CHECKS(TOO_MANY, scope="rollout")
def too_many(r: Routing, ctx: ProbeContext) -> Iterator[Finding]:
    for server in r.servers:
        names = server.routes
        if isinstance(server.max_loras, int) and len(names) > server.max_loras:
            yield TOO_MANY.finding(
                server.config,
                f"{server.name}: {len(names)} adapters routed ({', '.join(names[:5])}) "
                f"but max-loras {server.max_loras}",
                locator=f"{server.name}: max-loras",
                evidence={"routed": len(names), "max_loras": server.max_loras},
                line=server.line,
            )


@CHECKS(NOT_REGISTERED, scope="rollout")
def not_registered(r: Routing, ctx: ProbeContext) -> Iterator[Finding]:
    if not r.registries:
        return
    for server in r.servers:
        for ref in server.adapters:
            if not any(loaded.reg.versions(ref.name) for _, loaded in r.registries):
                yield NOT_REGISTERED.finding(
                    server.config,
                    f"{server.name}: adapter {ref.name!r} is routed but not in the registry",
                    locator=f"{server.name}: {ref.name}",
                    evidence={"name": ref.name},
                    line=ref.line,
                )


@CHECKS(NOT_SERVED, scope="rollout")
def not_served(r: Routing, ctx: ProbeContext) -> Iterator[Finding]:
    if not r.servers:
        return
    for art, loaded in r.registries:
        for e in loaded.reg.entries:
            if (
                isinstance(e, dict)
                and e.get("status") in ("canary", "active")
                and isinstance(e.get("name"), str)
                and e["name"] not in r.routed
            ):
                yield NOT_SERVED.finding(
                    art.path if art else loaded.reg.path,
                    f"{e['name']} v{e.get('version')} is {e['status']} but no serving config routes it",
                    locator=f"{e['name']} v{e.get('version')}",
                    evidence={"name": e["name"]},
                    line=loaded.line(e["name"]),
                )
