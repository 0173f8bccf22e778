"""Probe families, one package per domain. Each exposes RULES (a tuple of Rule) and PROBES (a list of Probe).

Probes never import Textual or the training stack: they are on the `doctor check` start-up path.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from doctor.core.probe import Probe
    from doctor.core.rules import RuleRegistry

FAMILIES = ("probes.training", "probes.adapter", "probes.eval_slices", "probes.serving", "probes.registry")


def _modules():
    for name in FAMILIES:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a family that is not built yet is skipped; a broken import is not
                raise


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
