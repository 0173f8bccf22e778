"""The demo world: `slice-regression` is flagged on the slices its scenario.json says dropped; `healthy` is clean."""

from __future__ import annotations

import json

import pytest

from doctor.core.settings import parse_settings
from doctor.engine import scan
from probes.eval_slices import PROBES, comparison_table, to_markdown
from tests.conftest import ROLLOUTS


def _rollout(name: str):
    root = ROLLOUTS / name
    if not (root / "eval").is_dir() or not (root / "scenario.json").is_file():
        pytest.skip(f"demo rollout {name} not built (python fixtures/build.py)")
    return root, json.loads((root / "scenario.json").read_text())


def _eval_findings(root):
    rep = scan([root], parse_settings({}), probes=PROBES)
    assert not [f for f in rep.findings if f.rule.startswith("DOC")]
    return rep


def test_slice_regression_scenario_is_flagged_on_the_right_slices():
    root, truth = _rollout("slice-regression")
    rep = _eval_findings(root)
    delta = truth["eval"]["accuracy_delta"]
    expected = {s for s in truth.get("regressed_slices", []) if s != "safety"}
    flagged = {f.evidence["slice"] for f in rep.findings if f.rule == "EVL001"}
    assert expected <= flagged, (expected, flagged)
    assert all(delta[s] <= -0.03 and s not in truth["train_slices"] for s in flagged), (flagged, delta)
    syms = {s for f in rep.findings for s in f.symptoms}
    assert "slice_regression" in syms and "narrow_coverage" in syms
    if "safety_regression" in truth["symptoms"]:
        assert "safety_regression" in syms
    for f in rep.findings:
        if f.rule == "EVL001":
            row = next(s for s in f.evidence["slices"] if s["slice"] == f.evidence["slice"])
            assert row["delta"] == pytest.approx(delta[f.evidence["slice"]], abs=1e-3)
    assert "regression" in to_markdown(comparison_table(rep))


def test_healthy_scenario_is_clean():
    root, _ = _rollout("healthy")
    rep = _eval_findings(root)
    loud = [f"{f.rule} {f.message}" for f in rep.findings if f.rule.startswith("EVL") and f.severity.rank >= 2]
    assert not loud, loud
