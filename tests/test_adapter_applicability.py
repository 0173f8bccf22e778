"""Which adapter checks run per PEFT tuner: the rules' `tuner:<trait>` flags against the tuners' traits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probes.adapter import RULES
from probes.adapter.applicability import applies, checks_fact, describe
from probes.adapter.rules import NEEDS
from probes.common.peft.tuners import TRAITS, tuner_for

ROOT = Path(__file__).resolve().parent.parent

LISTED = ["ADP001", "ADP004", "ADP006", "ADP007", "ADP008", "ADP009", "ADP010", "ADP011", "ADP012", "ADP013"]
APPLIED = {
    "LORA": LISTED,
    "ADALORA": ["ADP001", "ADP004", "ADP006", "ADP007", "ADP008", "ADP009", "ADP012", "ADP013"],
    "IA3": ["ADP001", "ADP006", "ADP012", "ADP013"],
    "LOHA": ["ADP001", "ADP004", "ADP006", "ADP010", "ADP012", "ADP013"],
    "LOKR": ["ADP001", "ADP004", "ADP006", "ADP010", "ADP012", "ADP013"],
    "VERA": ["ADP001", "ADP006"],
}


@pytest.mark.parametrize("peft_type", sorted(APPLIED))
def test_checks_fact_per_tuner(peft_type):
    fact = checks_fact(tuner_for(peft_type))
    assert fact == {"applied": APPLIED[peft_type], "not_applicable": [r for r in LISTED if r not in APPLIED[peft_type]]}


def test_no_config_means_lora():
    assert checks_fact(tuner_for(None))["not_applicable"] == []


def test_unlisted_rules_follow_their_flags():
    """ADP005 is gated with ADP004 (needs a rank); ADP002/003/014/015 run for every tuner."""
    by_id = {r.id: r for r in RULES}
    for peft_type, applied in APPLIED.items():
        tuner = tuner_for(peft_type)
        assert applies(by_id["ADP005"], tuner) == ("ADP004" in applied)
        assert all(applies(by_id[r], tuner) for r in ("ADP002", "ADP003", "ADP014", "ADP015"))


def test_flags_name_known_traits():
    for r in RULES:
        assert {f[len(NEEDS) :] for f in r.flags if f.startswith(NEEDS)} <= set(TRAITS), r.id


def test_describe_lists_what_applies_and_what_does_not():
    assert describe(tuner_for("IA3")) == (
        "checks that apply to IA3: file integrity, non-finite values, shapes vs base, module names vs base; "
        "not applicable: config vs weights (rank, targets), dead adapter, update-size outliers, rank underuse, "
        "scaling, DoRA magnitudes"
    )
    assert "not applicable" not in describe(tuner_for("LORA"))


def test_the_common_peft_kit_names_no_adapter_rule():
    kit = [ROOT / "probes/common/safetensors_io.py", *sorted((ROOT / "probes/common/peft").glob("*.py"))]
    named = {p.name: re.findall(r"\bADP\d{3}\b", p.read_text(encoding="utf-8")) for p in kit}
    assert {k: v for k, v in named.items() if v} == {}
