"""Adapter-registry probes (REG rules) and the registry file format (probes.registry.store)."""

from probes.registry.probe import PROBES, RULES
from probes.registry.store import add_version, load, save, set_status, validate

__all__ = ["PROBES", "RULES", "add_version", "load", "save", "set_status", "validate"]
