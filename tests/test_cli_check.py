"""`doctor check` end to end: exit codes, DOC findings for bad input, settings, baselines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_doctor, run_json

CLEAN = {
    "global_step": 4,
    "log_history": [
        {"loss": 2.1, "grad_norm": 1.2, "learning_rate": 1e-4, "epoch": 0.25, "step": 1},
        {"loss": 1.9, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": 0.5, "step": 2},
    ],
}


def write_state(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trainer_state.json"
    path.write_text(text)
    return path


def nan_state() -> str:
    # HF writes bare NaN tokens; a masked window logs loss 0.0 next to grad_norm NaN.
    return (
        '{"global_step": 3, "log_history": ['
        '{"loss": 2.0, "grad_norm": 1.1, "learning_rate": 0.001, "epoch": 0.1, "step": 10},'
        '{"loss": 0.0, "grad_norm": NaN, "learning_rate": 0.001, "epoch": 0.2, "step": 20},'
        '{"loss": NaN, "grad_norm": Infinity, "learning_rate": 0.001, "epoch": 0.3, "step": 30}]}'
    )


def test_nan_log_exits_1_and_names_first_bad_step(tmp_path):
    write_state(tmp_path / "run", nan_state())
    code, report = run_json("check", str(tmp_path / "run"), cwd=tmp_path)
    assert code == 1 and report["exit_code"] == 1
    trn = [f for f in report["findings"] if f["rule"] == "TRN001"]
    assert len(trn) == 1
    assert trn[0]["locator"] == "step 20"
    assert "step 20" in trn[0]["message"] and "masked" in trn[0]["message"]
    assert trn[0]["path"] == "run/trainer_state.json"
    assert trn[0]["symptoms"] == ["non_finite"]


def test_clean_log_exits_0(tmp_path):
    write_state(tmp_path, json.dumps(CLEAN))
    proc = run_doctor("check", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_missing_path_exits_2_with_one_line(tmp_path):
    proc = run_doctor("check", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file or directory" in lines[0]


def test_folder_with_nothing_known_is_an_error_finding(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, report = run_json("check", str(tmp_path))
    assert code == 1
    assert [f["rule"] for f in report["findings"]] == ["DOC003"]
    assert report["findings"][0]["severity"] == "error"


def test_malformed_json_names_file_and_position(tmp_path):
    write_state(tmp_path, '{"global_step": 3, "log_history": [{"loss": 1.0,, "step": 1}]}')
    code, report = run_json("check", str(tmp_path))
    assert code == 1
    doc = [f for f in report["findings"] if f["rule"] == "DOC001"]
    assert doc, report["findings"]
    assert doc[0]["path"].endswith("trainer_state.json")
    assert "trainer_state.json" in doc[0]["message"] and "line 1 column" in doc[0]["message"]


def test_fail_on_never_passes_but_never_hides_exit_2(tmp_path):
    write_state(tmp_path, nan_state())
    assert run_doctor("check", "--fail-on", "never", str(tmp_path)).returncode == 0
    assert run_doctor("check", "--fail-on", "never", str(tmp_path / "missing")).returncode == 2


def test_settings_disable_threshold_and_ignore_need_reason(tmp_path):
    write_state(tmp_path / "run", nan_state())
    (tmp_path / "doctor.toml").write_text('disable = ["TRN001"]\n')
    assert run_doctor("check", "run", cwd=tmp_path).returncode == 0

    (tmp_path / "doctor.toml").write_text('[[ignore]]\nrule = "TRN001"\n')
    proc = run_doctor("check", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "reason" in proc.stderr

    (tmp_path / "doctor.toml").write_text('[[ignore]]\nrule = "TRN001"\nreason = "known, tracked in #4"\n')
    assert run_doctor("check", "run", cwd=tmp_path).returncode == 0

    (tmp_path / "doctor.toml").write_text('[[ignore]]\nrule = "TRN001"\nreason = "was known"\nexpires = "2020-01-01"\n')
    code, report = run_json("check", "run", cwd=tmp_path)
    assert code == 1 and {"TRN001", "DOC005"} <= {f["rule"] for f in report["findings"]}

    (tmp_path / "doctor.toml").write_text('disable = ["TRN999"]\n')
    proc = run_doctor("check", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "TRN999" in proc.stderr


def test_pyproject_tool_doctor_fail_on(tmp_path):
    write_state(tmp_path / "run", nan_state())
    (tmp_path / "pyproject.toml").write_text('[tool.doctor]\nfail_on = "never"\n')
    assert run_doctor("check", "run", cwd=tmp_path).returncode == 0


def test_baseline_suppresses_known_and_fails_new(tmp_path):
    write_state(tmp_path / "a", nan_state())
    proc = run_doctor("check", ".", "--write-baseline", "baseline.json", cwd=tmp_path)
    assert proc.returncode == 0
    assert run_doctor("check", ".", "--baseline", "baseline.json", cwd=tmp_path).returncode == 0
    # An unrelated edit (values change, first bad step stays) keeps the finding suppressed…
    write_state(tmp_path / "a", nan_state().replace('"loss": 2.0', '"loss": 2.5'))
    assert run_doctor("check", ".", "--baseline", "baseline.json", cwd=tmp_path).returncode == 0
    # …a new problem still fails.
    write_state(tmp_path / "b", nan_state())
    code, report = run_json("check", ".", "--baseline", "baseline.json", cwd=tmp_path)
    assert code == 1 and {f["path"] for f in report["findings"]} == {"b/trainer_state.json"}


def test_rules_and_explain():
    proc = run_doctor("rules")
    assert proc.returncode == 0 and "TRN001" in proc.stdout and "DOC003" in proc.stdout
    proc = run_doctor("explain", "trn001")
    assert proc.returncode == 0 and "logging_nan_inf_filter" in proc.stdout
    proc = run_doctor("explain", "XYZ123")
    assert proc.returncode == 2 and "unknown rule" in proc.stderr


def test_output_file_written(tmp_path):
    write_state(tmp_path, nan_state())
    out = tmp_path / "out" / "report.sarif"
    proc = run_doctor("check", str(tmp_path), "--format", "sarif", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_settings_typos_and_bad_values_are_errors_not_silent(tmp_path):
    write_state(tmp_path / "run", nan_state())
    cases = {
        '[thresholds.TRN002]\nz = "abc"\n': "expected a float",
        "[thresholds.TRN002]\nzz = 3\n": "has no setting 'zz'",
        "bogus_key = 1\n": "unknown setting(s) bogus_key",
        '[thresholds.TRN002]\nz = 10\n[eval]\nbaseline_variant = "base"\n': None,
    }
    for text, message in cases.items():
        (tmp_path / "doctor.toml").write_text(text)
        proc = run_doctor("check", "run", cwd=tmp_path)
        if message is None:
            assert proc.returncode == 1, proc.stderr  # valid settings: the NaN log still fails
        else:
            assert proc.returncode == 2 and message in proc.stderr, (text, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1


def _rollout_copy(tmp_path: Path, name: str) -> Path:
    """The demo rollout with its manifest's relative paths (../../models, ../../data) still valid."""
    import shutil

    from tests.conftest import FIXTURES

    for part in ("models", "data"):
        (tmp_path / part).symlink_to(FIXTURES / part)
    dst = tmp_path / "rollouts" / name
    shutil.copytree(FIXTURES / "rollouts" / name, dst, ignore=shutil.ignore_patterns(".doctor"))
    return dst


def test_files_the_manifest_names_are_checked_even_when_damaged(tmp_path):
    """A damaged eval table or serving config does not look like one; the manifest says what it is, so the
    gate fails on it instead of skipping it (before: "No issues found", exit 0)."""
    root = _rollout_copy(tmp_path, "healthy")
    (root / "eval" / "candidate.csv").write_text("garbage text here\nmore\n")
    (root / "serving" / "vllm.yaml").write_text("model: [oops\nenable-lora: true\n")
    code, rep = run_json("check", str(root))
    assert code == 1
    by_file = {(f["rule"], Path(f["path"]).name) for f in rep["findings"]}
    assert ("EVL010", "candidate.csv") in by_file and ("DOC001", "vllm.yaml") in by_file, by_file
    # A target inside the rollout, and the file itself, use the same manifest.
    for target in (root / "eval", root / "eval" / "candidate.csv"):
        code, rep = run_json("check", str(target))
        assert code == 1 and [f["rule"] for f in rep["findings"]] == ["EVL010"], rep["findings"]


def test_header_typo_in_a_declared_eval_table_is_reported_not_relabelled(tmp_path):
    root = _rollout_copy(tmp_path, "diverged")
    table = root / "eval" / "candidate.csv"
    lines = table.read_text().split("\n", 1)
    table.write_text(lines[0].replace("score", "scor") + "\n" + lines[1])
    code, rep = run_json("check", str(root / "eval"))
    (f,) = [f for f in rep["findings"] if Path(f["path"]).name == "candidate.csv"]
    assert code == 1 and f["rule"] == "EVL010" and "score" in f["message"] and "scor" in f["message"]


def test_unknown_option_names_the_subcommand(tmp_path):
    proc = run_doctor("check", str(tmp_path), "--fromat", "json")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "doctor check: unrecognized arguments: --fromat json (see `doctor check --help`)"


def test_declared_file_behind_a_symlink_is_still_checked(tmp_path):
    root = _rollout_copy(tmp_path, "healthy")
    outside = tmp_path / "ext" / "cand.csv"
    outside.parent.mkdir()
    outside.write_text("garbage\n")
    (root / "eval" / "candidate.csv").unlink()
    (root / "eval" / "candidate.csv").symlink_to(outside)
    code, rep = run_json("check", str(root))
    assert code == 1 and any(f["rule"] == "EVL010" for f in rep["findings"]), rep["findings"]


def test_unreadable_manifest_above_the_target_is_no_crash(tmp_path):
    """A target inside a rollout whose rollout.toml is not UTF-8 (or has wrong types): the file is still
    checked by its content; no internal error."""
    root = _rollout_copy(tmp_path, "healthy")
    manifest = root / "rollout.toml"
    for bad in (b"[rollout]\nname = '\xe9'\n", b'[rollout]\nname = "x"\nadapters = 5\n'):
        manifest.write_bytes(bad)
        for target in (root / "eval", root / "eval" / "candidate.csv"):
            proc = run_doctor("check", str(target))
            assert proc.returncode == 0, (bad, target, proc.stdout[-500:], proc.stderr[-500:])
