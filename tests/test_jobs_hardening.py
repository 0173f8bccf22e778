"""Job hardening: safetensors only (a .bin-only base is refused), one lock per GPU whichever rollout asks,
version numbering that never swallows an unreadable registry, `doctor jobs logs` in time order."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from doctor.jobs.resources import JobLockError, acquire_device_lock, release_device_lock
from doctor.jobs.spec import SpecError, validate_spec
from tests.conftest import FIXTURES
from tests.test_jobs_spec import MANIFEST

TINY = FIXTURES / "models" / "tiny-base"


def _rollout(tmp_path: Path, weights: str) -> Path:
    root = tmp_path / "toy"
    (root / "model").mkdir(parents=True)
    shutil.copy(TINY / "config.json", root / "model" / "config.json")
    (root / "model" / weights).write_bytes(b"\x80\x04not loaded")
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text("{}")
    row = {"id": "a1", "slice": "arithmetic", "prompt": "What is 1 + 1?", "response": "2", "scorer": "exact"}
    (root / "train.jsonl").write_text(json.dumps(row) + "\n")
    (root / "eval.jsonl").write_text(json.dumps(row) + "\n")
    (root / "rollout.toml").write_text(MANIFEST)
    return root


def _spec(root: Path) -> dict:
    return {
        "kind": "reeval",
        "rollout": str(root),
        "base_model": str(root / "model"),
        "adapter": str(root / "adapter"),
        "eval_set": str(root / "eval.jsonl"),
    }


def test_a_bin_only_base_is_refused_before_the_job_starts(tmp_path):
    root = _rollout(tmp_path, "pytorch_model.bin")
    with pytest.raises(SpecError, match=r"only pytorch_model\.bin .*safetensors only"):
        validate_spec(_spec(root))


def test_a_safetensors_base_is_accepted(tmp_path):
    root = _rollout(tmp_path, "model.safetensors")
    (root / "model" / "pytorch_model.bin").write_bytes(b"ignored")  # beside safetensors: never loaded
    validate_spec(_spec(root))


@pytest.mark.slow
def test_worker_model_loading_never_falls_back_to_a_pickle(tmp_path):
    """transformers would torch.load a pytorch_model.bin beside config.json; the workers pass
    use_safetensors=True, so a .bin-only base fails to load instead (the spec check says why earlier)."""
    import torch
    from safetensors.torch import load_file

    from doctor.jobs.evaluation import load_model

    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(TINY / "config.json", base)
    torch.save(load_file(TINY / "model.safetensors"), base / "pytorch_model.bin")  # a valid checkpoint
    with pytest.raises(OSError, match="safetensors"):
        load_model(base)


@pytest.fixture
def machine_tmp(tmp_path, monkeypatch) -> Path:
    import tempfile

    monkeypatch.delenv("DOCTOR_LOCK_DIR", raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "machine"))
    return tmp_path


def test_gpu_lock_is_per_device_not_per_rollout(machine_tmp):
    a, b = machine_tmp / "rollout-a", machine_tmp / "rollout-b"
    fd = acquire_device_lock(a, "cuda0", "job-a")
    try:
        with pytest.raises(JobLockError, match="cuda0 is busy: job job-a"):
            acquire_device_lock(b, "cuda0", "job-b")  # another rollout, the same GPU
        other = acquire_device_lock(b, "cuda1", "job-c")  # another GPU is free
        release_device_lock(other)
    finally:
        release_device_lock(fd)
    release_device_lock(acquire_device_lock(b, "cuda0", "job-b"))  # free once released


def test_cpu_jobs_of_different_rollouts_may_run_side_by_side(machine_tmp):
    fd = acquire_device_lock(machine_tmp / "rollout-a", "cpu", "job-a")
    try:
        release_device_lock(acquire_device_lock(machine_tmp / "rollout-b", "cpu", "job-b"))
        with pytest.raises(JobLockError):
            acquire_device_lock(machine_tmp / "rollout-a", "cpu", "job-c")
    finally:
        release_device_lock(fd)


def test_version_numbering_says_when_the_registry_cannot_be_read(tmp_path):
    from doctor.jobs.monitor import _next_version

    (tmp_path / "registry.yaml").write_text("adapters: [unclosed\n")
    with pytest.raises(RuntimeError, match=r"cannot number the new support-bot version: .*registry\.yaml"):
        _next_version(tmp_path, "support-bot", tmp_path / "registry.yaml")
    (tmp_path / "registry.yaml").write_text("schema: peft-doctor/registry/1\nadapters: []\n")
    (tmp_path / "rollout.toml").write_text("[rollout\n")
    with pytest.raises(RuntimeError, match=r"rollout\.toml"):
        _next_version(tmp_path, "support-bot", tmp_path / "registry.yaml")


def test_version_numbering_without_registry_or_manifest_starts_at_1(tmp_path):
    from doctor.jobs.monitor import _next_version

    assert _next_version(tmp_path, "support-bot", tmp_path / "registry.yaml") == 1


def test_job_events_come_back_in_time_order(tmp_path):
    from doctor.jobs.monitor import _Recorder
    from doctor.jobs.store import JobStore

    store = JobStore(tmp_path)
    job = store.create({"kind": "reeval"})
    rec = _Recorder(store, job.id, None)
    rec.add({"event": "log", "message": "launch: worker"})  # the monitor's own line, buffered
    time.sleep(0.05)
    rec.add({"event": "progress", "phase": "load", "ts": time.time()})  # the worker stamps its events
    time.sleep(0.05)
    store.add_event(job.id, {"event": "log", "message": "cancel requested", "ts": time.time()})  # another writer
    time.sleep(0.05)
    rec.flush()
    events = store.events(job.id)
    assert [e.get("message", e["event"]) for e in events] == ["launch: worker", "progress", "cancel requested"]
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)
