"""Probe families, one package per domain. Each exposes RULES (a tuple of Rule), PROBES (a list of Probe) and
CLASSIFIERS (its formats: doctor.core.discovery.Classifier, in probes/<family>/formats.py).

Probes never import Textual or the training stack: they are on the `doctor check` start-up path.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from doctor.core.discovery import Classifier
    from doctor.core.model import Artifact
    from doctor.core.probe import Probe
    from doctor.core.rules import RuleRegistry

FAMILIES = ("probes.training", "probes.adapter", "probes.eval_slices", "probes.serving", "probes.registry")


def _modules():
    # Every family, always: one that fails to import is an error, never a family silently missing from a scan.
    for name in FAMILIES:
        yield importlib.import_module(name)


@cache
def rule_registry() -> RuleRegistry:
    from doctor.core.rules import DOC_RULES, RuleRegistry

    reg = RuleRegistry()
    reg.extend(DOC_RULES)
    for mod in _modules():
        reg.extend(getattr(mod, "RULES", ()))
    return reg


def load_probes() -> list[Probe]:
    rule_registry()  # registers rules first, so duplicate ids fail loudly before any probe runs
    probes: list[Probe] = []
    for mod in _modules():
        probes.extend(getattr(mod, "PROBES", ()))
    return probes


@cache
def classifiers() -> tuple[Classifier, ...]:
    """Every family's format classifiers in the order discovery asks them (strongest evidence first)."""
    from doctor.core.discovery import by_strength

    return by_strength(c for mod in _modules() for c in getattr(mod, "CLASSIFIERS", ()))


def discover(target: Path) -> list[Artifact]:
    """doctor.core.discovery.discover with every family's formats: what `doctor check` finds under target."""
    from doctor.core import discovery

    return discovery.discover(target, classifiers())


def classify_file(path: Path) -> str | None:
    from doctor.core import discovery

    return discovery.classify_file(path, classifiers())


def classify_dir(path: Path) -> str | None:
    from doctor.core import discovery

    return discovery.classify_dir(path, classifiers())
