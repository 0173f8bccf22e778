"""Which adapter checks mean something for a tuner: a rule's `tuner:<trait>` flags against the tuner's traits.

IA3 saves a rescaling vector, LoHa/LoKr Hadamard/Kronecker factors, VeRA/OFT/… tensors doctor does not
interpret: a check that reads LoRA factors (dead B, update norms, energy rank), a fixed alpha/r scale or DoRA
magnitudes would raise nonsense there, so the probe runs only the checks whose traits the tuner has.
"""

from __future__ import annotations

from typing import Any

from doctor.core.rules import Rule
from probes.adapter.rules import NEEDS, RULES, TUNER_CHECKS
from probes.common.peft.tuners import Tuner


def applies(rule: Rule, tuner: Tuner) -> bool:
    """Whether `rule`'s check runs on an adapter of this tuner (every trait its flags name)."""
    return all(tuner.has(f[len(NEEDS) :]) for f in rule.flags if f.startswith(NEEDS))


def checks_fact(tuner: Tuner) -> dict[str, Any]:
    """facts["checks"]: the tuner-dependent checks that ran and those that do not apply."""
    listed = [r for r in RULES if r.id in TUNER_CHECKS]
    return {
        "applied": [r.id for r in listed if applies(r, tuner)],
        "not_applicable": [r.id for r in listed if not applies(r, tuner)],
    }


def describe(tuner: Tuner) -> str:
    """The ADP003 note on a peft_type other than LoRA: which checks apply to it."""
    fact = checks_fact(tuner)
    on = ", ".join(TUNER_CHECKS[r] for r in fact["applied"])
    off = ", ".join(TUNER_CHECKS[r] for r in fact["not_applicable"])
    return f"checks that apply to {tuner.label}: {on}" + (f"; not applicable: {off}" if off else "")
