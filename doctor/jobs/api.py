"""The light jobs API for the CLI and the TUI (no torch anywhere on its import path).

```python
from doctor.jobs.api import JobStore, launch, run, cancel, spec_from_action, resume

store = JobStore(rollout_root)          # .doctor/jobs.sqlite under the rollout
store.list_jobs(); store.get(job_id); store.events(job_id, after_seq=0)
job_id = launch(spec, rollout_root)     # returns at once; a detached monitor process runs the job
job = run(spec, rollout_root, on_event=print)   # blocks (what `doctor jobs run` uses)
cancel(job_id, rollout_root)
spec = spec_from_action(rollout_root, {"kind": "retrain", "overrides": {"learning_rate": "x0.1"}})
```
A job record (`doctor.jobs.store.Job`): id, kind, state (queued/running/succeeded/failed/cancelled),
progress (step, max_steps), eta_s, created/started/ended, outputs, error, comparison.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doctor.jobs.launchers import LAUNCHERS, LaunchError, sbatch_script, submit_sbatch, worker_env
from doctor.jobs.resources import (
    JobLockError,
    acquire_device_lock,
    device_key,
    estimate_vram,
    release_device_lock,
    vram_warning,
)
from doctor.jobs.spec import SpecError, spec_from_action, spec_from_triage, validate_spec
from doctor.jobs.store import STATES, TERMINAL, Job, JobStore, job_dir, pid_alive

__all__ = [
    "STATES",
    "TERMINAL",
    "Job",
    "JobLockError",
    "JobStore",
    "LaunchError",
    "SpecError",
    "cancel",
    "estimate_vram",
    "find_store",
    "find_stores",
    "launch",
    "reconcile",
    "resume",
    "run",
    "spec_from_action",
    "spec_from_triage",
    "validate_spec",
    "vram_warning",
]


def _prepare(spec: dict[str, Any], rollout_root: Path | str | None, launcher: str) -> tuple[dict[str, Any], JobStore]:
    if launcher not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    spec = dict(spec)
    if rollout_root is not None and not spec.get("rollout"):
        spec["rollout"] = str(Path(rollout_root).resolve())
    spec = validate_spec(spec)
    if rollout_root is not None and Path(rollout_root).resolve() != Path(spec["rollout"]).resolve():
        raise SpecError(f"spec rollout {spec['rollout']} is not {rollout_root}")
    if spec.get("num_processes", 1) > 1 and launcher == "local":
        raise LaunchError("num_processes > 1 needs launcher accelerate, torchrun or slurm")
    return spec, JobStore(spec["rollout"])


def launch(
    spec: dict[str, Any],
    rollout_root: Path | str | None = None,
    launcher: str = "local",
    *,
    python: str | None = None,
) -> str:
    """Validate, take the device lock, start a detached monitor (which runs the worker); return the job id.

    Raises SpecError / JobLockError / LaunchError before anything starts. For `slurm` the sbatch script is
    written under the job folder and submitted when `sbatch` is on PATH (the job stays queued until the
    allocation's monitor picks it up).
    """
    spec, store = _prepare(spec, rollout_root, launcher)
    if launcher == "slurm":
        job = store.create(spec, launcher)
        jd = job_dir(store.root, job.id)
        script = jd / "job.sbatch"
        script.write_text(sbatch_script(job.id, store.root, jd, num_gpus=spec.get("num_processes", 1), python=python))
        os.chmod(script, 0o755)
        slurm_id, message = submit_sbatch(script)
        store.update(job.id, outputs={"sbatch_script": str(script), "slurm_job_id": slurm_id})
        store.add_event(job.id, {"event": "log", "message": message})
        return job.id
    lock_fd = acquire_device_lock(store.root, device_key(spec), "pending")
    try:
        job = store.create(spec, launcher)
        jd = job_dir(store.root, job.id)
        cmd = [
            python or sys.executable, "-m", "doctor.jobs.monitor", "--rollout", str(store.root), "--job", job.id,
            "--launcher", launcher, "--lock-fd", str(lock_fd),
        ]  # fmt: skip
        with (jd / "monitor.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=worker_env(),
                cwd=str(Path(__file__).resolve().parents[2]),
                pass_fds=(lock_fd,),
                start_new_session=True,  # outlives the launching process (a TUI may close)
            )
        store.update(job.id, monitor_pid=proc.pid)
        _reap_later(proc)
        return job.id
    finally:
        release_device_lock(lock_fd)  # the monitor holds its inherited copy of the lock


def _reap_later(proc: subprocess.Popen) -> None:
    import threading

    threading.Thread(target=proc.wait, daemon=True).start()


def run(
    spec: dict[str, Any],
    rollout_root: Path | str | None = None,
    launcher: str = "local",
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_created: Callable[[Job], None] | None = None,
) -> Job:
    """Run a job in this process (monitor here, worker in a subprocess) and block until it ends."""
    from doctor.jobs.monitor import run_job

    spec, store = _prepare(spec, rollout_root, launcher)
    if launcher == "slurm":
        job_id = launch(spec, store.root, "slurm")
        return store.get(job_id)
    lock_fd = acquire_device_lock(store.root, device_key(spec), "pending")
    job = store.create(spec, launcher)
    if on_created:
        on_created(job)
    return run_job(store, job.id, launcher=launcher, on_event=on_event, lock_fd=lock_fd)


def cancel(job_id: str, rollout_root: Path | str) -> Job:
    """Ask a job to stop: SIGTERM to its worker's process group (it stops at the next step, cleanly)."""
    store = JobStore(rollout_root)
    job = store.get(job_id)
    if job.done:
        return job
    store.request_cancel(job.id)
    if job.state == "queued" and not job.worker_pid:
        if job.launcher == "slurm" and job.outputs.get("slurm_job_id"):
            import shutil

            if shutil.which("scancel"):
                subprocess.run(["scancel", str(job.outputs["slurm_job_id"])], check=False)
        if not pid_alive(job.monitor_pid):
            store.set_state(job.id, "cancelled", "cancelled before it started")
        return store.get(job.id)
    if job.worker_pid and pid_alive(job.worker_pid):
        try:
            os.killpg(job.worker_pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(job.worker_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return store.get(job.id)


def resume(job_id: str, rollout_root: Path | str, launcher: str = "local", *, block: bool = False, **kw: Any) -> Any:
    """A new job with the same spec that resumes from the last Trainer checkpoint of `job_id`."""
    store = JobStore(rollout_root)
    job = store.get(job_id)
    if job.kind != "retrain":
        raise SpecError(f"job {job.id} is a {job.kind}; only a retrain resumes from a checkpoint")
    ckpt = last_checkpoint(job)
    if ckpt is None:
        raise SpecError(
            f"job {job.id} left no Trainer checkpoint under {job_dir(store.root, job.id) / 'out' / 'train'} "
            "(it stopped before its first checkpoint; save_steps in the spec sets how often they are written)"
        )
    spec = dict(job.spec)
    spec["resume_from_checkpoint"] = str(ckpt)
    spec["source"] = {**(spec.get("source") or {}), "resumed_from": job.id}
    return run(spec, store.root, launcher, **kw) if block else launch(spec, store.root, launcher)


def last_checkpoint(job: Job) -> Path | None:
    """The newest COMPLETE Trainer checkpoint. Trainer writes trainer_state.json after the weights, optimizer,
    scheduler and RNG state, so a worker killed mid-save leaves a folder without it, which resume must skip
    (transformers refuses it: "Can't find a valid checkpoint")."""
    train = job_dir(job.spec["rollout"], job.id) / "out" / "train"
    ckpts = [
        p
        for p in train.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None


def reconcile(store: JobStore) -> list[Job]:
    """Mark jobs whose monitor died (machine restart, kill) as failed; returns every job."""
    jobs = store.list_jobs()
    for j in jobs:
        if (
            j.state in ("queued", "running")
            and j.launcher != "slurm"
            and j.monitor_pid
            and not pid_alive(j.monitor_pid)
        ):
            if j.worker_pid and pid_alive(j.worker_pid):
                continue
            store.set_state(j.id, "failed", "the job's monitor process exited before the job ended")
    return store.list_jobs()


_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def find_stores(start: Path | str = ".") -> list[JobStore]:
    """Job stores at/above `start` (nearest first), then below it (sorted); VCS/venv/cache folders are skipped."""
    start = Path(start).resolve()
    found: list[Path] = [d for d in (start, *start.parents) if (d / ".doctor" / "jobs.sqlite").is_file()]
    below: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        if here.name == ".doctor":
            if "jobs.sqlite" in filenames and here.parent != start:
                below.append(here.parent)
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
    return [JobStore(d) for d in [*found, *sorted(below)]]


def find_store(job_id: str, start: Path | str = ".") -> JobStore:
    """The store holding `job_id`: the rollout at/above `start`, then under it, whose .doctor/jobs.sqlite knows it.

    KeyError (the message names the stores searched and suggests --rollout) when none does.
    """
    start = Path(start).resolve()
    stores = find_stores(start)
    ambiguous = None
    for store in stores:
        try:
            store.get(job_id)
            return store
        except KeyError as exc:
            if "ambiguous" in str(exc.args[0]):
                ambiguous = ambiguous or str(exc.args[0])
    if ambiguous:
        raise KeyError(ambiguous)
    if not stores:
        searched = "no job store (.doctor/jobs.sqlite) at, above or below it"
    else:
        names = [str(s.path) for s in stores[:5]]
        more = f" and {len(stores) - 5} more" if len(stores) > 5 else ""
        searched = f"searched {len(stores)} job store(s): {', '.join(names)}{more}"
    raise KeyError(
        f"no job {job_id!r} found from {start} ({searched}); a job lives in the .doctor/ folder of the rollout it "
        "ran on: add --rollout PATH (that rollout's folder)"
    )
