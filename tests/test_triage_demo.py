"""`doctor triage` on the demo world: each scenario's ground-truth cause ranks first."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROLLOUTS, run_doctor

SCENARIOS = ["healthy", "diverged", "qlora-unstable", "slice-regression", "serving-mismatch", "corrupt"]


def triage(path, *extra):
    proc = run_doctor("triage", str(path), "--format", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_cause_ranks_first(scenario):
    folder = ROLLOUTS / scenario
    if not (folder / "scenario.json").is_file():
        pytest.skip(f"demo rollout {scenario} not built")
    truth = json.loads((folder / "scenario.json").read_text())
    result = triage(folder)
    assert result["schema"] == "peft-doctor/triage/1"
    causes = result["diagnosis"]["causes"]
    if truth["cause"] == "none":
        assert causes == []
        assert result["diagnosis"]["leaf"] == "triage.no_regression"
        assert "No regression found" in result["diagnosis"]["text"]
        return
    assert causes, result
    assert causes[0]["cause"] == truth["cause"], [c["cause"] for c in causes]
    # Every cause lists the findings that support it, and each step says how it was answered.
    assert causes[0]["evidence"], causes[0]
    assert all(step["answer"] for step in result["path"])


def test_triage_console_and_markdown_render_path_and_actions():
    folder = ROLLOUTS / "diverged"
    if not folder.is_dir():
        pytest.skip("demo rollout diverged not built")
    out = run_doctor("triage", str(folder)).stdout
    assert "Path taken:" in out and "Likely causes (ranked):" in out and "doctor jobs run --from-triage" in out
    md = run_doctor("triage", str(folder), "--format", "markdown").stdout
    assert md.startswith("# Triage:") and "| rank | cause | score | evidence |" in md


def test_headless_answer_on_a_clean_rollout(tmp_path):
    folder = ROLLOUTS / "healthy"
    if not folder.is_dir():
        pytest.skip("demo rollout healthy not built")
    default = triage(folder)
    step = next(s for s in default["path"] if s["node"] == "user_reports_regression")
    assert step["answer"] == "unknown" and step["how"] == "pending"
    answered = triage(folder, "--answer", "user_reports_regression=yes")
    assert answered["diagnosis"]["causes"][0]["cause"] == "prompt_policy_interaction"
    bad = run_doctor("triage", str(folder), "--answer", "user_reports_regression=perhaps")
    assert bad.returncode == 2 and "not one of" in bad.stderr
