"""Corrective jobs end to end on CPU with the real stack (slow: real Trainer + peft runs on the tiny model).

Every test copies the fixture world it mutates into tmp_path first; fixtures/ is never written.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.jobs import api
from doctor.jobs.compare import findings_snapshot
from doctor.playbook.recipe import apply_overrides
from tests.conftest import FIXTURES, ROLLOUTS

pytestmark = pytest.mark.slow


def world(tmp_path: Path, name: str) -> Path:
    """A private copy of fixtures/{models,data} and one rollout (manifest paths stay valid)."""
    if not (ROLLOUTS / name / "rollout.toml").is_file():
        pytest.skip(f"demo world scenario {name} not built (python fixtures/build.py)")
    dst = tmp_path / "fixtures"
    for part in ("models", "data"):
        shutil.copytree(FIXTURES / part, dst / part)
    shutil.copytree(ROLLOUTS / name, dst / "rollouts" / name, ignore=shutil.ignore_patterns(".doctor"))
    return dst / "rollouts" / name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _with(spec: dict, **overrides) -> dict:
    recipe = dict(spec["recipe"])
    recipe["data"] = dict(spec["data"])
    new = apply_overrides(recipe, overrides)
    spec = dict(spec, data=new.pop("data"), recipe=new)
    spec["overrides"] = {**spec.get("overrides", {}), **overrides}
    return spec


def _training_rules(findings: list[dict]) -> set[str]:
    return {f["rule"] for f in findings if f["rule"].startswith("TRN")}


def test_diverged_triage_retrain_fixes_training(tmp_path):
    root = world(tmp_path, "diverged")
    original = tree_digest(root / "adapter")
    spec = api.spec_from_triage(root, Settings())
    # The triage chose a retrain that lowers the learning rate and turns clipping on.
    assert spec["kind"] == "retrain"
    assert spec["overrides"]["learning_rate"] == {"multiply": 0.1, "max": 2.0e-4}
    # lr 1.0 is far out of range: x0.1 alone would leave 0.1, so the action bounds it to the usual maximum.
    assert spec["recipe"]["learning_rate"] == 2.0e-4 and spec["recipe"]["max_grad_norm"] > 0
    t0 = time.perf_counter()
    job = api.run(spec, root)
    elapsed = time.perf_counter() - t0
    assert job.state == "succeeded", job.error
    c = job.comparison
    resolved = {f["rule"] for f in c["resolved"]}
    assert {"TRN001", "TRN004", "ADP006"} <= resolved, c  # non-finite loss, grad explosion, NaN weights: gone
    after_trn = set(c["after"]["rules"]) & {"TRN001", "TRN002", "TRN004"}
    assert not after_trn, f"still unstable: {after_trn}"  # no non-finite, spike or gradient explosion
    assert c["after"]["accuracy"] > c["before"]["accuracy"]
    assert all(s["delta"] is not None for s in c["slices"])
    # Outputs: a new version folder registered as its verdict says; v1 (NaN weights) is never a rollback
    # target; the original is untouched.
    new = Path(job.outputs["adapter"])
    assert new == root / "adapters" / "support-bot-v2" and (new / "adapter_model.safetensors").is_file()
    entry = job.outputs["registry"]["entry"]
    assert (
        entry["version"] == 2
        and entry["rollback_to"] is None
        and entry["sha256"] == sha256(new / "adapter_model.safetensors")
    )
    assert entry["status"] == ("canary" if job.verdict["verdict"] == "fixed" else "rejected"), job.verdict
    assert tree_digest(root / "adapter") == original
    # The training log of the new run, probed on its own: no non-finite or spike findings.
    after = findings_snapshot([Path(job.outputs["train_dir"])], ("TRN",))
    assert not _training_rules(after["findings"]) & {"TRN001", "TRN002"}
    assert not {"non_finite", "loss_spike"} & {sym for f in after["findings"] for sym in f["symptoms"]}
    print(f"\ndiverged retrain: {elapsed:.0f}s; comparison: {c['before']} -> {c['after']}; slices {c['slices']}")


def test_slice_regression_mixed_retrain_removes_regression(tmp_path):
    root = world(tmp_path, "slice-regression")
    spec = api.spec_from_action(root, {"kind": "retrain", "overrides": {"train_slices": "all"}})
    assert spec["data"]["train_slices"] == "all"
    t0 = time.perf_counter()
    job = api.run(spec, root)
    elapsed = time.perf_counter() - t0
    assert job.state == "succeeded", job.error
    c = job.comparison
    before_evl = {r for r in c["before"]["rules"] if r.startswith("EVL")}
    after_evl = {r for r in c["after"]["rules"] if r.startswith("EVL")}
    assert "EVL001" in before_evl and "EVL001" not in after_evl, c
    assert {f["rule"] for f in c["resolved"]} >= {"EVL001"}
    regressed = [
        s for s in c["slices"] if s["before"] is not None and s["base"] is not None and s["before"] < s["base"]
    ]
    assert regressed and all(s["delta"] > 0 for s in regressed), c["slices"]
    print(f"\nslice-regression retrain: {elapsed:.0f}s; {c['before']} -> {c['after']}; slices {c['slices']}")


def _small_spec(root: Path, steps: int = 8, **extra) -> dict:
    spec = api.spec_from_action(root, {"kind": "retrain", "overrides": {"max_steps": steps}})
    spec["recipe"]["per_device_train_batch_size"] = 8
    spec["recipe"]["lora"]["target_modules"] = ["q_proj", "v_proj"]
    spec["recipe"]["save_strategy"] = "no"
    spec.pop("save_steps", None)  # no checkpoints unless a test asks for them
    spec["eval"] = {}
    spec.update(extra)
    return spec


def _wait(store: api.JobStore, job_id: str, pred, timeout: float = 600.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = store.get(job_id)
        if pred(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {store.get(job_id)}")


def test_sigkill_leaves_adapter_intact_then_resume(tmp_path):
    root = world(tmp_path, "healthy")
    original = tree_digest(root / "adapter")
    registry_before = (root / "registry.yaml").read_bytes()
    store = api.JobStore(root)
    # Enough steps that the kill lands mid-run even on a fast machine (the tiny model trains ~10 steps/s).
    job_id = api.launch(_small_spec(root, steps=60, save_steps=2), root)
    _wait(store, job_id, lambda j: j.step >= 3 or j.done)
    job = store.get(job_id)
    assert job.state == "running", job.error
    os.kill(job.worker_pid, signal.SIGKILL)
    job = _wait(store, job_id, lambda j: j.done)
    assert job.state == "failed" and "SIGKILL" in job.error, job.error
    assert tree_digest(root / "adapter") == original
    assert not (root / "adapters").exists() or not any((root / "adapters").iterdir())  # no half-written version
    assert (root / "registry.yaml").read_bytes() == registry_before
    ckpt = api.last_checkpoint(job)
    assert ckpt is not None
    # Resume from the last Trainer checkpoint: training continues after it and the job completes.
    resumed = api.resume(job_id, root, block=True)
    assert resumed.state == "succeeded", resumed.error
    steps = [e["step"] for e in store.events(resumed.id) if e.get("event") == "progress" and e.get("phase") == "train"]
    done_at = int(ckpt.name.split("-")[1])
    assert done_at < 60 and steps and steps[0] == done_at + 1 and steps[-1] == 60, steps
    assert Path(resumed.outputs["adapter"]).name == "support-bot-v2"
    assert tree_digest(root / "adapter") == original


def test_cancel_stops_cleanly(tmp_path):
    root = world(tmp_path, "healthy")
    store = api.JobStore(root)
    job_id = api.launch(_small_spec(root, steps=200), root)
    _wait(store, job_id, lambda j: j.step >= 1 or j.done)
    api.cancel(job_id, root)
    job = _wait(store, job_id, lambda j: j.done)
    assert job.state == "cancelled", job.error
    assert job.step < 200
    assert any(e.get("event") == "cancelled" for e in store.events(job_id))
    assert not (root / "adapters").exists()
    # The lock was released: another job can take the device right away.
    from doctor.jobs.resources import acquire_device_lock, release_device_lock

    release_device_lock(acquire_device_lock(root, "cpu", "next"))


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_multi_process_launchers_train_one_adapter_on_two_cpu_ranks(tmp_path, launcher):
    """The launchers for real: two CPU ranks (gloo DDP) train one adapter, written once, by rank 0."""
    import json

    root = world(tmp_path, "healthy")
    steps, batch = 6, 8
    job = api.run(_small_spec(root, steps=steps, num_processes=2, device="cpu"), root, launcher)
    assert job.state == "succeeded", job.error
    state = json.loads((Path(job.outputs["train_dir"]) / "trainer_state.json").read_text())
    n = job.outputs["train"]["n_examples"]
    last = [e for e in state["log_history"] if "loss" in e][-1]
    # Each optimizer step consumed a batch on each of the two ranks: an epoch is n / (2 x batch) steps.
    assert last["step"] == steps and last["epoch"] == pytest.approx(steps / math.ceil(n / (2 * batch)), rel=1e-6)
    adapter = Path(job.outputs["adapter"])
    snap = findings_snapshot([adapter], ("ADP",))
    assert not snap["findings"], snap


def test_cli_run_and_show(tmp_path):
    from tests.conftest import run_doctor

    root = world(tmp_path, "healthy")
    spec = api.spec_from_action(root, {"kind": "reeval"})
    assert spec["adapter"] == str(root / "adapter") and spec["variant"] == "lora"
    spec["scorers"] = {"uppercase": "contains"}
    import json

    (tmp_path / "reeval.json").write_text(json.dumps(spec))
    proc = run_doctor("jobs", "run", str(tmp_path / "reeval.json"))
    assert proc.returncode == 0, proc.stderr
    assert "SUCCEEDED" in proc.stdout and "slice" in proc.stdout
    job = api.JobStore(root).list_jobs()[0]
    table = Path(job.outputs["eval_table"])
    header = table.read_text().splitlines()[0].split(",")
    assert {"id", "slice", "score", "variant"} <= set(header)
    show = run_doctor("jobs", "show", job.id, "--rollout", str(root))
    assert show.returncode == 0 and "Before → after" in show.stdout
    lst = run_doctor("jobs", "list", "--rollout", str(root))
    assert job.id in lst.stdout and "succeeded" in lst.stdout
    logs = run_doctor("jobs", "logs", job.id, "--rollout", str(root))
    assert "eval" in logs.stdout
