"""Adapter-registry probes (REG rules) and the registry file format (probes.registry.store)."""

from typing import Any

from doctor.core.probe import LazyProbe, lazy_attr
from probes.registry.formats import CLASSIFIERS
from probes.registry.rules import CHECKS, RULES

PROBES = [
    LazyProbe(
        "registry",
        {"registry"},
        "probes.registry.probe:RegistryProbe",
        rollout_kinds={"registry", "serving_config", "manifest"},
    )
]


def __getattr__(name: str) -> Any:
    names = {n: "store" for n in ("add_version", "load", "save", "set_status", "validate")}
    return lazy_attr(__name__, names, name)


__all__ = [
    "CHECKS",
    "CLASSIFIERS",
    "PROBES",
    "RULES",
    "add_version",
    "load",
    "save",
    "set_status",
    "validate",
]
