"""Resume picks the newest complete checkpoint: a worker killed while Trainer was saving leaves a partial one."""

from __future__ import annotations

from types import SimpleNamespace

from doctor.jobs import api
from doctor.jobs.store import job_dir


def test_a_checkpoint_killed_mid_save_is_skipped(tmp_path):
    job = SimpleNamespace(id="20261201-000000-abcdef", spec={"rollout": str(tmp_path)})
    train = job_dir(str(tmp_path), job.id) / "out" / "train"
    for step, complete in ((2, True), (4, True), (6, False)):  # checkpoint-6: weights written, state not yet
        ck = train / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        (ck / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (ck / "trainer_state.json").write_text("{}")
    (train / "checkpoint-final").mkdir()
    assert api.last_checkpoint(job) == train / "checkpoint-4"


def test_no_complete_checkpoint_means_no_resume_point(tmp_path):
    job = SimpleNamespace(id="20261201-000000-abcdef", spec={"rollout": str(tmp_path)})
    (job_dir(str(tmp_path), job.id) / "out" / "train" / "checkpoint-2").mkdir(parents=True)
    assert api.last_checkpoint(job) is None
