"""Unreadable input is DOC001 naming the file and the reason (never DOC002, never a hang); `doctor inspect`
shows the same read errors as `check` and exits 1; the app refuses to start without a terminal."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, ROLLOUTS, run_doctor

ALIAS_BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdef", "bcdefg")]
    + ["model: x", "enable-lora: true", ""]
)
DEEP = "[" * 200_000 + "]" * 200_000


# --- no terminal ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [[], ["tui", "fixtures/rollouts/healthy"]], ids=["doctor", "doctor-tui"])
def test_app_without_a_terminal_refuses_at_once(tmp_path, argv):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    with out.open("wb") as fh:  # `doctor </dev/null >out`: before the fix it ran until killed
        proc = subprocess.run(
            [sys.executable, "-m", "doctor", *argv],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.PIPE,
            env=env,
            timeout=30,
        )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "needs a terminal" in lines[0] and "doctor check" in lines[0], lines
    assert out.read_bytes() == b""  # no escape codes written anywhere
    assert elapsed < 20  # generous (shared CPUs); without the check it never returns


# --- doctor inspect shows read errors ------------------------------------------------------------------------
def _inspect(path: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    text = run_doctor("inspect", str(path), cwd=cwd)
    js = run_doctor("inspect", str(path), "--format", "json", cwd=cwd)
    return text, json.loads(js.stdout) | {"_rc": js.returncode}


def test_inspect_empty_trainer_state_shows_the_read_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_state.json").write_text("")
    text, data = _inspect(tmp_path / "run", tmp_path)
    assert text.returncode == 1 and data["_rc"] == 1
    assert "DOC001 trainer_state.json: file is empty" in text.stdout
    assert [(e["rule"], e["path"]) for e in data["errors"]] == [("DOC001", "run/trainer_state.json")]


def test_inspect_alias_bomb_yaml_shows_the_read_error(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "vllm.yaml").write_text(ALIAS_BOMB)
    text, data = _inspect(tmp_path / "serving", tmp_path)
    assert text.returncode == 1 and data["_rc"] == 1
    assert "DOC001 vllm.yaml: YAML rejected" in text.stdout and "alias" in text.stdout
    assert data["errors"][0]["rule"] == "DOC001"


def test_inspect_clean_input_still_exits_0(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_state.json").write_text(
        '{"global_step": 1, "log_history": [{"loss": 1.0, "step": 1}]}'
    )
    text, data = _inspect(tmp_path / "run", tmp_path)
    assert text.returncode == 0 and data["errors"] == []


# --- unreadable files, for real ------------------------------------------------------------------------------
@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="doctor-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run doctor so that file permissions apply: as `nobody` when the tests run as root (root reads a
    mode-000 file), as ourselves otherwise."""
    cmd = [sys.executable, "-m", "doctor", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "HOME": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _mode_000_adapter(root: Path) -> Path:
    ad = root / "ad"
    ad.mkdir()
    ad.chmod(0o755)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(ROLLOUTS / "healthy" / "adapter" / name, ad / name)
        (ad / name).chmod(0o644)
    (ad / "adapter_model.safetensors").chmod(0)
    return ad


def test_adapter_weights_without_read_permission_is_doc001(shared_dir):
    _mode_000_adapter(shared_dir)
    proc = _as_unprivileged("check", "ad", "--format", "json", cwd=shared_dir)
    assert proc.returncode == 1, proc.stderr
    found = [(f["rule"], f["path"], f["message"]) for f in json.loads(proc.stdout)["findings"]]
    assert (
        "DOC001",
        "ad/adapter_model.safetensors",
        "adapter_model.safetensors: cannot open: Permission denied",
    ) in found
    assert not [f for f in found if f[0] == "DOC002"], found


def test_inspect_unreadable_trainer_state_shows_the_read_error(shared_dir):
    run = shared_dir / "run"
    run.mkdir()
    run.chmod(0o755)
    (run / "trainer_state.json").write_text('{"global_step": 1, "log_history": []}')
    (run / "trainer_state.json").chmod(0)
    proc = _as_unprivileged("inspect", "run", cwd=shared_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DOC001 trainer_state.json: cannot read: Permission denied" in proc.stdout


@pytest.mark.parametrize("make", ["directory", "fifo"])
def test_adapter_weights_not_a_regular_file_is_doc001(tmp_path, make):
    ad = tmp_path / "ad"
    ad.mkdir()
    shutil.copy(ROLLOUTS / "healthy" / "adapter" / "adapter_config.json", ad)
    weights = ad / "adapter_model.safetensors"
    weights.mkdir() if make == "directory" else os.mkfifo(weights)
    proc = run_doctor("check", "ad", "--format", "json", cwd=tmp_path)  # a FIFO must not block the reader
    found = {(f["rule"], f["path"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("DOC001", "ad/adapter_model.safetensors") in found, found


# --- deep nesting ----------------------------------------------------------------------------------------------
def test_200000_deep_json_array_is_doc001_with_position(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "trainer_state.json").write_text(DEEP)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text(DEEP)
    header = ('{"w": ' + DEEP + "}").encode()
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "trainer_log.jsonl").write_text(DEEP + "\n")
    proc = run_doctor("check", ".", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # not 2 (internal error), which discovery gave before
    findings = json.loads(proc.stdout)["findings"]
    assert not [f for f in findings if f["rule"] == "DOC002"], findings
    state = [f for f in findings if f["path"] == "t/trainer_state.json"]
    assert state and state[0]["rule"] == "DOC001"
    assert "nesting too deep" in state[0]["message"] and "line 1 column 501" in state[0]["message"]
    for name in ("a/adapter_config.json", "a/adapter_model.safetensors"):
        got = [f for f in findings if f["path"] == name]
        assert got and "nesting too deep" in got[0]["message"], (name, findings)


# --- size caps read only what they need ------------------------------------------------------------------------
def test_size_capped_reads_do_not_read_the_whole_file(tmp_path):
    from probes import classify_dir
    from probes.common.peft.basemodel import read_base_config

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"\0" * 16)
    with (base / "config.json").open("wb") as fh:  # 64 MiB, sparse: cheap on disk, costly if read whole
        fh.write(b'{"architectures": ["LlamaForCausalLM"], "pad": "')
        fh.truncate(64 << 20)
    tracemalloc.start()
    try:
        classify_dir(base)
        try:
            read_base_config(base / "config.json")
        except Exception:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, f"peak {peak >> 20} MiB: the capped readers read the whole 64 MiB file"


# --- defects the fuzz suite found (tests/test_fuzz_readers.py), pinned --------------------------------------
def test_manifest_that_is_not_utf8_is_doc001_not_a_crash(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "rollout.toml").write_bytes(b'[rollout]\nname = "\x80"\n')
    proc = run_doctor("check", "r", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # was 2: UnicodeDecodeError escaped the scan
    found = [(f["rule"], f["locator"]) for f in json.loads(proc.stdout)["findings"]]
    assert ("DOC001", "byte 18") in found, found


def test_safetensors_header_with_a_non_string_dtype_is_a_finding(tmp_path):
    ad = tmp_path / "ad"
    ad.mkdir()
    shutil.copy(ROLLOUTS / "healthy" / "adapter" / "adapter_config.json", ad)
    header = json.dumps({"w.lora_A.weight": {"dtype": {"x": "F32"}, "shape": [1], "data_offsets": [0, 4]}}).encode()
    (ad / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    proc = run_doctor("check", "ad", "--format", "json", cwd=tmp_path)
    rules = {f["rule"] for f in json.loads(proc.stdout)["findings"]}
    assert "DOC002" not in rules and "ADP001" in rules, rules


def test_a_path_too_long_for_the_file_system_is_doc001(tmp_path):
    (tmp_path / "r" / "serving").mkdir(parents=True)
    (tmp_path / "r" / "serving" / "compose.yaml").write_text(
        "services:\n  vllm:\n    image: vllm/vllm-openai:v0.6.3\n"
        "    command: --model m --enable-lora --lora-modules a=/adapters/a\n"
        f"    volumes:\n      - ./{'x' * 300}:/adapters/a\n"
    )
    proc = run_doctor("check", "r", "--format", "json", cwd=tmp_path)
    findings = json.loads(proc.stdout)["findings"]
    assert not [f for f in findings if f["rule"] == "DOC002"], findings
    assert any(f["rule"] == "DOC001" and "File name too long" in f["message"] for f in findings), findings


def test_eval_csv_whose_header_line_csv_refuses_is_a_finding(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "candidate.csv").write_bytes(b"\rd,slice,score\r\na1,arithmetic,1\r\n")
    proc = run_doctor("check", ".", "--format", "json", cwd=tmp_path)
    findings = json.loads(proc.stdout)["findings"]
    assert not [f for f in findings if f["rule"] == "DOC002"], findings
    assert any(f["path"] == "eval/candidate.csv" for f in findings), findings


def test_manifest_nested_too_deep_or_naming_a_too_long_path_is_doc001(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "rollout.toml").write_text('[rollout]\nname = "a"\nx = ' + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "rollout.toml").write_text(f'[rollout]\nname = "b"\n[eval]\nbaseline = "{"x" * 5000}.csv"\n')
    proc = run_doctor("check", ".", "--format", "json", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr  # was 2: RecursionError / OSError escaped the scan
    findings = json.loads(proc.stdout)["findings"]
    assert ("DOC001", "a/rollout.toml") in {(f["rule"], f["path"]) for f in findings}, findings


def test_a_huge_compose_command_is_a_finding_not_a_hang(tmp_path):
    from doctor.core.settings import Settings
    from doctor.engine import scan

    (tmp_path / "serving").mkdir()
    word = "[" * 200_000 + "]" * 200_000
    (tmp_path / "serving" / "compose.yaml").write_text(
        "services:\n  vllm:\n    image: vllm/vllm-openai:v0.6.3\n"
        f"    command: >\n      {word} --model m --enable-lora --lora-modules a=/adapters/a\n"
    )
    report = scan([tmp_path], Settings())  # shlex took ~10 s a run on this (quadratic in the word)
    assert any("characters long; not split" in f.message for f in report.findings), report.findings


def test_compose_volumes_that_are_not_a_list_and_csv_with_a_repeated_column(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "compose.yaml").write_text(
        "services:\n  vllm:\n    image: vllm/vllm-openai:v0.6.3\n"
        "    command: --model m --enable-lora --lora-modules a=/adapters/a\n    volumes: true\n"
    )
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "candidate.csv").write_text("id,slice,id,score\na1,arithmetic,a1,1\n")
    proc = run_doctor("check", ".", "--format", "json", cwd=tmp_path)
    findings = json.loads(proc.stdout)["findings"]
    assert not [f for f in findings if f["rule"] == "DOC002"], findings
    csv_errors = [f for f in findings if f["path"] == "eval/candidate.csv" and f["rule"] == "DOC001"]
    assert csv_errors and "appear twice" in csv_errors[0]["message"], findings
