"""`doctor fix` where triage offers no corrective job: a verdict and its exit code, never an internal error."""

from __future__ import annotations

import json
import shutil

from tests.conftest import FIXTURES, run_doctor


def _world(tmp_path, name: str):
    for part in ("models", "data"):
        shutil.copytree(FIXTURES / part, tmp_path / part)
    shutil.copytree(FIXTURES / "rollouts" / name, tmp_path / "rollouts" / name)
    return tmp_path / "rollouts" / name


def test_a_healthy_rollout_has_nothing_to_fix_and_exits_0(tmp_path):
    root = _world(tmp_path, "healthy")
    proc = run_doctor("fix", str(root), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"] == "peft-doctor/fix/1"
    assert report["verdict"] == "fixed" and report["attempts"] == [] and report["best_version"] is None
    assert "nothing to fix" in report["stopped"]
    assert not (root / ".doctor" / "jobs").exists()  # no job was started


def test_a_serving_mismatch_is_not_fixed_by_a_measurement_and_exits_1(tmp_path):
    root = _world(tmp_path, "serving-mismatch")
    proc = run_doctor("fix", str(root), "--attempts", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr
    assert "NOT FIXED" in proc.stdout and "no job ran" in proc.stdout
    assert "remain and triage" in proc.stdout  # says what is still wrong
    assert not (root / ".doctor" / "jobs").exists()  # the parity check is offered by triage, not run as a fix
