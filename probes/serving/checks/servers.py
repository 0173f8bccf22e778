"""A server × the base model it serves: LoRA support for the architecture, quantization with LoRA."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.serving import engines
from probes.serving import rules as R
from probes.serving.rules import CHECKS
from probes.serving.subjects import Served, ServingRollout


def _lora_servers(subject: ServingRollout) -> Iterator[Served]:
    """Servers that load adapters (LoRA enabled or adapters routed)."""
    return (s for s in subject.served if s.server.enable_lora or s.server.adapters)


@CHECKS(R.ARCH_NO_LORA, scope="rollout")
def architecture_without_lora(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    for s in _lora_servers(subject):
        server, base = s.server, s.base
        if engines.lora_arch_support(server.engine, base.arch) is False:
            label = engines.version_label(server.engine, server.version)
            yield R.ARCH_NO_LORA.finding(
                s.artifact.path,
                f"{server.name}: {label} has no LoRA support for {base.arch} (base {base.folder})",
                locator=f"{server.name}: model",
                evidence={"architecture": base.arch},
                line=server.line,
            )


@CHECKS(R.QUANT, scope="rollout")
def quantization_without_lora(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    """The server's --quantization, else the base config's quantization_config (the first one refused)."""
    for s in _lora_servers(subject):
        server = s.server
        label = engines.version_label(server.engine, server.version)
        for method, where in ((server.quantization, "--quantization"), (s.base.quant_method, "base config.json")):
            if method and not engines.quant_supported(server.engine, server.version, method):
                yield R.QUANT.finding(
                    s.artifact.path,
                    f"{server.name}: {where} quantization {method!r} is not supported with LoRA by {label}",
                    locator=f"{server.name}: quantization",
                    evidence={"method": method, "source": where, "engine": server.engine, "version": server.version},
                    line=server.line,
                )
                break
