"""Launcher command lines, the sbatch script, the VRAM estimate, the store and the device lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.jobs import api
from doctor.jobs.launchers import LaunchError, sbatch_script, submit_sbatch, worker_command
from doctor.jobs.resources import (
    Gpu,
    JobLockError,
    acquire_device_lock,
    estimate_vram,
    release_device_lock,
    vram_warning,
)
from tests.conftest import REPO
from tests.test_jobs_spec import _retrain, toy  # noqa: F401 - fixture


def test_worker_commands():
    spec = Path("/r/.doctor/jobs/j1/spec.json")
    assert worker_command(spec, python="py") == ["py", "-m", "doctor.jobs.worker", str(spec)]
    acc = worker_command(spec, "accelerate", 4, python="py")
    assert acc == [
        "py", "-m", "accelerate.commands.launch", "--num_processes", "4", "--num_machines", "1", "--multi_gpu",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "doctor.jobs.worker", str(spec),
    ]  # fmt: skip
    tr = worker_command(spec, "torchrun", 2, python="py")
    assert tr == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
        "-m", "doctor.jobs.worker", str(spec),
    ]  # fmt: skip
    with pytest.raises(LaunchError, match="unknown launcher 'k8s'"):
        worker_command(spec, "k8s")
    with pytest.raises(LaunchError, match="use accelerate or torchrun"):
        worker_command(spec, "local", 2)


def test_sbatch_script(tmp_path):
    text = sbatch_script("20260101-000000-abc123", tmp_path, tmp_path / "jd", num_gpus=2, python="/venv/bin/python")
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --job-name=peft-doctor-20260101-000000-abc123" in text
    assert "#SBATCH --gres=gpu:2" in text
    assert f"#SBATCH --output={tmp_path / 'jd' / 'slurm-%j.out'}" in text
    last = [ln for ln in text.splitlines() if ln.strip()][-1]
    assert last == (
        f"/venv/bin/python -m doctor.jobs.monitor --rollout {tmp_path} --job 20260101-000000-abc123 --launcher torchrun"
    )
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)


def _fake_tool(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    p = folder / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def test_sbatch_submission(tmp_path, monkeypatch):
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    slurm_id, msg = submit_sbatch(script)
    assert slurm_id is None and f"the script is at {script}" in msg
    _fake_tool(tmp_path / "bin", "sbatch", f'echo "$@" > {tmp_path}/args; echo "4242;cluster"\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    slurm_id, msg = submit_sbatch(script)
    assert slurm_id == "4242" and "submitted Slurm job 4242" in msg
    assert (tmp_path / "args").read_text().split() == ["--parsable", str(script)]


def test_slurm_launch_writes_script_and_queues(toy, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("PATH", str(tmp_path / "nothing") + os.pathsep + "/usr/bin:/bin")
    job_id = api.launch(_retrain(toy), toy, launcher="slurm")
    job = api.JobStore(toy).get(job_id)
    assert job.state == "queued" and job.launcher == "slurm"
    assert Path(job.outputs["sbatch_script"]).is_file() and job.outputs["slurm_job_id"] is None
    assert "sbatch is not on PATH" in api.JobStore(toy).events(job_id)[0]["message"]


def _model(tmp_path: Path, hidden: int, layers: int, inter: int, vocab: int) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    cfg = {"hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": inter, "vocab_size": vocab,
           "num_attention_heads": 32, "num_key_value_heads": 8}  # fmt: skip
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_vram_estimate_8b_like(tmp_path):
    d = _model(tmp_path, 4096, 32, 14336, 128256)
    spec = {"base_model": str(d), "method": "lora", "recipe": {"per_device_train_batch_size": 4, "lora": {"r": 16}}}
    e16 = estimate_vram(spec)
    q = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
    e4 = estimate_vram({**spec, "method": "qlora", "recipe": {**spec["recipe"], "quantization": q}})
    gib = 1024**3
    assert 14 < e16["base_bytes"] / gib < 16  # ~7.5B params at 2 bytes
    assert 4 < e4["base_bytes"] / gib < 6.5  # 4-bit linear layers + 16-bit embeddings
    assert e4["total_bytes"] < e16["total_bytes"]
    assert e16["adapter_params"] == 32 * 16 * (4096 + 4096 + 4096 + 1024)  # q_proj + v_proj
    small = [Gpu(0, "Tiny GPU", 8 * 1024, 0)]
    warn = vram_warning(spec, small)
    assert warn and "GiB" in warn and "Tiny GPU" in warn
    assert vram_warning(spec, [Gpu(0, "H200", 141 * 1024, 0)]) is None
    assert vram_warning(spec, []) is None


def test_store_survives_reopen_and_keeps_events(tmp_path):
    (tmp_path / "r").mkdir()
    store = api.JobStore(tmp_path / "r")
    assert store.list_jobs() == [] and store.events("x") == []
    assert not (tmp_path / "r" / ".doctor").exists()  # reading (a TUI browsing fixtures) writes nothing
    job = store.create({"kind": "reeval", "rollout": str(tmp_path / "r")})
    store.add_events(job.id, [{"event": "log", "message": "a"}, {"event": "progress", "step": 1}])
    store.set_state(job.id, "running")
    again = api.JobStore(tmp_path / "r")
    assert again.get(job.id).state == "running"
    assert [e["seq"] for e in again.events(job.id)] == [1, 2]
    assert [e["event"] for e in again.events(job.id, after_seq=1)] == ["progress"]
    again.set_state(job.id, "failed", "boom")
    j = again.get(job.id)
    assert j.state == "failed" and j.error == "boom" and j.ended
    assert [s["state"] for s in again.states(job.id)] == ["queued", "running", "failed"]
    assert again.get(job.id[-6:]).id == job.id  # a unique suffix is enough


def test_device_lock_gives_a_clear_message(toy):  # noqa: F811
    fd = acquire_device_lock(toy, "cpu", "job-one")
    try:
        with pytest.raises(JobLockError, match=r"cpu is busy: job job-one .*doctor jobs cancel job-one"):
            acquire_device_lock(toy, "cpu", "job-two")
        with pytest.raises(JobLockError):
            api.launch(_retrain(toy, device="cpu"), toy)
        assert api.JobStore(toy).list_jobs() == []  # nothing was started or recorded
    finally:
        release_device_lock(fd)
    fd = acquire_device_lock(toy, "cpu", "job-three")
    release_device_lock(fd)


CLI_SCRIPT = """
import runpy, sys
sys.argv = ["doctor", "jobs", *sys.argv[1:]]
try:
    runpy.run_module("doctor", run_name="__main__")
except SystemExit:
    pass
import doctor.jobs.api, doctor.jobs.monitor, doctor.cli.jobs
heavy = [m for m in ("torch", "transformers", "peft", "bitsandbytes", "accelerate") if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def test_cli_jobs_imports_no_training_stack(toy):  # noqa: F811
    api.JobStore(toy).create({"kind": "reeval", "rollout": str(toy)})
    for args in (["list", "--rollout", str(toy)], ["run", "--dry-run", "--from-triage", str(toy)]):
        proc = subprocess.run(
            [sys.executable, "-c", CLI_SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
        assert line, proc.stderr
        assert line[-1] == "HEAVY=", f"doctor jobs {args[0]} imported {line[-1][6:]}"
