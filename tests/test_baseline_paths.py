"""`--write-baseline` / `--baseline` from different folders: a CI job that writes the baseline at the repo root
and a developer who runs `doctor check` from a subfolder must suppress the same findings."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROLLOUTS, run_doctor


@pytest.fixture
def repo(tmp_path):
    if not (ROLLOUTS / "diverged").is_dir():
        pytest.skip("demo world not built")
    shutil.copytree(ROLLOUTS / "diverged", tmp_path / "runs" / "diverged")
    return tmp_path


def test_baseline_written_at_root_suppresses_from_a_subfolder(repo):
    assert run_doctor("check", "runs/diverged", "--write-baseline", "bl.json", cwd=repo).returncode == 0
    data = json.loads((repo / "bl.json").read_text())
    assert data["findings"] and all(e["path"].startswith("runs/diverged/") for e in data["findings"])
    for cwd, target, baseline in (
        (repo, "runs/diverged", "bl.json"),
        (repo / "runs", "diverged", "../bl.json"),
        (repo / "runs" / "diverged", ".", "../../bl.json"),
    ):
        proc = run_doctor("check", target, "--baseline", baseline, "--format", "json", cwd=cwd)
        report = json.loads(proc.stdout)
        assert proc.returncode == 0 and report["findings"] == [], (cwd, proc.stdout[:500])


def test_baseline_in_a_subfolder_records_paths_from_there(repo):
    (repo / ".ci").mkdir()
    assert run_doctor("check", "runs/diverged", "--write-baseline", ".ci/bl.json", cwd=repo).returncode == 0
    data = json.loads((repo / ".ci" / "bl.json").read_text())
    assert all(e["path"].startswith("../runs/diverged/") for e in data["findings"])
    proc = run_doctor("check", "runs/diverged", "--baseline", ".ci/bl.json", cwd=repo)
    assert proc.returncode == 0, proc.stdout[-800:]
    # a new finding is still reported: the baseline only hides what it recorded
    (repo / "runs" / "diverged" / "adapter" / "adapter_config.json").write_text("{")
    assert run_doctor("check", "runs/diverged", "--baseline", ".ci/bl.json", cwd=repo).returncode == 1
