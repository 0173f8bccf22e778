"""`doctor inspect`, `--matrix`, one-line usage errors, and triage on a folder with nothing in it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROLLOUTS, run_doctor


@pytest.fixture
def healthy():
    if not (ROLLOUTS / "healthy").is_dir():
        pytest.skip("demo world not built")
    return ROLLOUTS / "healthy"


def test_inspect_adapter_shows_facts_and_per_layer_table(healthy):
    proc = run_doctor("inspect", str(healthy / "adapter"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fact in ("r: 8", "alpha: 16", "scale: 2", "trainable_params: 65536", "sha256: ", "target_modules:"):
        assert fact in out, fact
    assert "update_norm" in out and "effective_rank" in out and "model.layers.3.mlp.down_proj" in out


def test_inspect_json_lists_every_artifact_with_kind(healthy):
    proc = run_doctor("inspect", str(healthy), "--format", "json")
    data = json.loads(proc.stdout)
    kinds = {a["kind"] for a in data["artifacts"]}
    assert {"adapter", "training_log", "eval_table", "serving_config", "registry", "manifest"} <= kinds


def test_matrix_names_the_planted_serving_problems():
    folder = ROLLOUTS / "serving-mismatch"
    if not folder.is_dir():
        pytest.skip("demo world not built")
    text = run_doctor("inspect", "--matrix", str(folder)).stdout
    assert text.startswith("compatibility matrix:") and "SRV003" in text and "SRV016" in text
    rows = json.loads(run_doctor("inspect", "--matrix", str(folder), "--format", "json").stdout)["matrix"]
    assert rows and rows[0]["ok"] is False


def test_usage_errors_are_one_line_with_exit_2():
    for args in (["check", "--fail-on", "bogus", "."], ["check", "--format", "xml", "."], ["nonsense"]):
        proc = run_doctor(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_triage_of_an_empty_folder_is_not_a_clean_bill(tmp_path):
    proc = run_doctor("triage", str(tmp_path), "--format", "json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["diagnosis"]["causes"] == [] and "Nothing to triage" in result["diagnosis"]["text"]
    proc = run_doctor("triage", str(tmp_path), "--answer", "no_such_node=yes")
    assert proc.returncode == 2 and "no such question" in proc.stderr


def test_inspect_text_shows_nested_facts_without_python_reprs(healthy, tmp_path):
    """Serving servers and eval comparisons hold nested records: blocks and tables, never dict reprs."""
    import shutil

    shutil.copytree(healthy, tmp_path / "healthy")
    out = run_doctor("inspect", str(tmp_path / "healthy")).stdout
    for repr_text in ("{'", "[{", ": None", " None ", ": True", ": False"):
        assert repr_text not in out, repr_text
    assert "- variant: lora" in out and "- engine: vllm" in out
    assert "enable_lora: yes" in out
    # the per-slice rows of a comparison stay one table
    assert any(line.split()[:1] == ["arithmetic"] and "100" in line for line in out.splitlines())
