"""Small CLI defects: `doctor watch` exits as `check` would on Ctrl-C, `doctor playbooks list`, ADP009
once per training run listing its checkpoints."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, ROLLOUTS, run_doctor, run_json
from tests.test_cli_check import CLEAN, nan_state, write_state


def _watch_then_ctrl_c(folder: Path, wait_for: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "doctor", "watch", str(folder), "--interval", "0.1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # As a terminal's foreground job has it: a runner started in the background (`make test &`, some CI
        # agents) passes SIGINT down ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen, deadline = b"", time.monotonic() + 60
    try:
        while wait_for.encode() not in seen and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                seen += os.read(proc.stdout.fileno(), 65536)
        assert wait_for.encode() in seen, seen.decode(errors="replace")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, seen.decode(errors="replace")


def test_watch_exits_1_on_ctrl_c_after_reporting_an_error(tmp_path):
    write_state(tmp_path / "run", nan_state())
    rc, out = _watch_then_ctrl_c(tmp_path / "run", "TRN001")
    assert rc == 1, out


def test_watch_exits_0_on_ctrl_c_when_nothing_failed(tmp_path):
    write_state(tmp_path / "run", json.dumps(CLEAN))
    rc, out = _watch_then_ctrl_c(tmp_path / "run", "watching")
    assert rc == 0, out


def test_playbooks_list(tmp_path):
    proc = run_doctor("playbooks", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    names = {line.split()[0] for line in lines[:-2]}
    assert {"triage", "instability", "slice_regression", "serving_mismatch"} <= names
    triage = next(line for line in lines if line.startswith("triage "))
    assert "PEFT regression triage" in triage and "nodes" in triage and "leaves" in triage
    assert lines[-1].startswith(f"{len(names)} playbooks in ")


def test_rank_underused_once_per_run_listing_its_checkpoints(tmp_path):
    run = tmp_path / "out"
    run.mkdir()
    for step in (10, 20, 30):
        shutil.copytree(ROLLOUTS / "healthy" / "adapter", run / f"checkpoint-{step}")
    # Thresholds that make the healthy r=8 adapter count as underused (it otherwise needs r >= 16).
    (tmp_path / "doctor.toml").write_text("[thresholds.ADP009]\nmin_r = 4\nshare = 1.0\n")
    code, report = run_json("check", "out", "--config", "doctor.toml", "--fail-on", "never", cwd=tmp_path)
    assert code == 0
    adp009 = [f for f in report["findings"] if f["rule"] == "ADP009"]
    assert len(adp009) == 1, [f["path"] for f in adp009]
    assert "in 3 checkpoints: checkpoint-10, checkpoint-20, checkpoint-30" in adp009[0]["message"]
    assert [c["path"] for c in adp009[0]["evidence"]["checkpoints"]] == [
        "checkpoint-10",
        "checkpoint-20",
        "checkpoint-30",
    ]


@pytest.mark.parametrize("n", [1])
def test_single_adapter_still_gets_its_own_adp009(tmp_path, n):
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", tmp_path / "adapter")
    (tmp_path / "doctor.toml").write_text("[thresholds.ADP009]\nmin_r = 4\nshare = 1.0\n")
    _, report = run_json("check", "adapter", "--config", "doctor.toml", "--fail-on", "never", cwd=tmp_path)
    adp009 = [f for f in report["findings"] if f["rule"] == "ADP009"]
    assert len(adp009) == n and " — in " not in adp009[0]["message"]
