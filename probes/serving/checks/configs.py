"""Rules a serving config can be checked against by itself (artifact scope): what the readers could not
parse, and the engine options and routes it writes."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.serving import engines
from probes.serving import rules as R
from probes.serving.rules import CHECKS
from probes.serving.server import AdapterRef
from probes.serving.subjects import ConfigSubject


@CHECKS(R.UNPARSEABLE)
def unparseable(subject: ConfigSubject, ctx: ProbeContext) -> list[Finding]:
    """Parts the readers could not parse (and --config files not found or unreadable)."""
    return subject.noted("unparseable", R.UNPARSEABLE)


@CHECKS(R.UNRESOLVED_VAR)
def unresolved_variable(subject: ConfigSubject, ctx: ProbeContext) -> list[Finding]:
    return subject.noted("unresolved_var", R.UNRESOLVED_VAR)


@CHECKS(R.INVALID_SPEC)
def invalid_adapter_spec(subject: ConfigSubject, ctx: ProbeContext) -> list[Finding]:
    return subject.noted("invalid_adapter_spec", R.INVALID_SPEC)


@CHECKS(R.CAP_NOT_ALLOWED)
def cap_not_allowed(subject: ConfigSubject, ctx: ProbeContext) -> Iterator[Finding]:
    """An explicit --max-lora-rank the vLLM version does not accept."""
    for server in subject.servers:
        if server.engine != "vllm" or not isinstance(server.max_lora_rank, int):
            continue
        if "max_lora_rank" not in server.explicit:
            continue
        caps = engines.allowed_caps(server.version)
        if server.max_lora_rank not in caps:
            label = engines.version_label("vllm", server.version)
            yield R.CAP_NOT_ALLOWED.finding(
                subject.artifact.path,
                f"{server.name}: --max-lora-rank {server.max_lora_rank} not accepted by {label} "
                f"(allowed: {', '.join(map(str, sorted(caps)))})",
                locator=f"{server.name}: max-lora-rank",
                evidence={
                    "max_lora_rank": server.max_lora_rank,
                    "allowed": sorted(caps),
                    "version": server.version,
                },
                line=server.line,
            )


@CHECKS(R.CPU_LORAS)
def cpu_loras_below_max_loras(subject: ConfigSubject, ctx: ProbeContext) -> Iterator[Finding]:
    for server in subject.servers:
        if (
            server.engine == "vllm"
            and isinstance(server.max_loras, int)
            and isinstance(server.max_cpu_loras, int)
            and server.max_cpu_loras < server.max_loras
        ):
            yield R.CPU_LORAS.finding(
                subject.artifact.path,
                f"{server.name}: max-cpu-loras {server.max_cpu_loras} < max-loras {server.max_loras}",
                locator=f"{server.name}: max-cpu-loras",
                evidence={"max_loras": server.max_loras, "max_cpu_loras": server.max_cpu_loras},
                line=server.line,
            )


@CHECKS(R.LORA_NOT_ENABLED)
def lora_not_enabled(subject: ConfigSubject, ctx: ProbeContext) -> Iterator[Finding]:
    for server in subject.servers:
        if server.engine == "vllm" and server.adapters and not server.enable_lora:
            yield R.LORA_NOT_ENABLED.finding(
                subject.artifact.path,
                f"{server.name}: {len(server.adapters)} lora-modules ({', '.join(server.routes[:3])}) "
                "but no --enable-lora",
                locator=f"{server.name}: enable-lora",
                evidence={"routes": server.routes},
                line=server.line,
            )


@CHECKS(R.NAME_CLASH)
def route_named_like_the_base(subject: ConfigSubject, ctx: ProbeContext) -> Iterator[Finding]:
    for server in subject.servers:
        served = set(server.served_names or ([server.model] if server.model else []))
        for a in server.adapters:
            if a.name in served:
                yield R.NAME_CLASH.finding(
                    subject.artifact.path,
                    f"{server.name}: adapter route {a.name!r} equals the served model name",
                    locator=f"{server.name}: {a.name}",
                    evidence={"name": a.name},
                    line=a.line,
                )


@CHECKS(R.DUPLICATE_ROUTE)
def duplicate_route(subject: ConfigSubject, ctx: ProbeContext) -> Iterator[Finding]:
    for server in subject.servers:
        seen: dict[str, AdapterRef] = {}
        for a in server.adapters:
            if a.name in seen:
                yield R.DUPLICATE_ROUTE.finding(
                    subject.artifact.path,
                    f"{server.name}: adapter name {a.name!r} routed twice ({seen[a.name].target!r} and {a.target!r})",
                    locator=f"{server.name}: {a.name}",
                    evidence={"name": a.name, "targets": [seen[a.name].target, a.target]},
                    line=a.line,
                )
            seen.setdefault(a.name, a)
