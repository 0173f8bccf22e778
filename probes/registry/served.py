"""What the rollout's servers route, read from the serving probe's facts (never by importing serving).

The serving probe runs at artifact scope and leaves each serving config's normalized servers in
`artifact.facts["servers"]` (Server.to_facts()); the registry's rollout checks read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor.core.probe import Rollout


@dataclass(frozen=True)
class ServedAdapter:
    name: str
    target: str  # path or hub id, as written (after interpolation)
    line: int = 1


@dataclass(frozen=True)
class Served:
    """One serving process of a serving config."""

    config: Path  # the serving config file that starts it
    name: str
    line: int
    max_loras: Any
    adapters: tuple[ServedAdapter, ...]
    volumes: tuple[tuple[str, str], ...]  # (host, container): what probes.common.targets resolves through

    @property
    def routes(self) -> list[str]:
        """Routed adapter names, each once, in config order."""
        return list(dict.fromkeys(a.name for a in self.adapters))


def _served(config: Path, d: dict[str, Any]) -> Served:
    adapters = tuple(
        ServedAdapter(str(a.get("name", "")), str(a.get("target", "")), int(a.get("line") or 1))
        for a in d.get("adapters") or []
        if isinstance(a, dict)
    )
    volumes = tuple(
        (str(v[0]), str(v[1])) for v in d.get("volumes") or [] if isinstance(v, list | tuple) and len(v) == 2
    )
    return Served(config, str(d.get("name", "")), int(d.get("line") or 1), d.get("max_loras"), adapters, volumes)


def rollout_served(rollout: Rollout) -> list[Served]:
    return [
        _served(a.path, d)
        for a in rollout.of_kind("serving_config")
        for d in a.facts.get("servers", [])
        if isinstance(d, dict)
    ]
