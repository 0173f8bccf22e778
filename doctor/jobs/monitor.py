"""The parent-side monitor: start the worker, record its events, then finalize and re-probe.

`run_job(store, job_id, ...)` runs in the CLI process (`doctor jobs run` blocks on it) or in a detached
`python -m doctor.jobs.monitor --rollout R --job ID` process (what `launch()` starts for the TUI, and what
an sbatch script runs on a cluster node). Light: it never imports torch; re-probing (doctor.engine.check)
happens here, not in the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doctor.jobs import compare as cmp
from doctor.jobs.launchers import worker_command, worker_env
from doctor.jobs.resources import acquire_device_lock, device_key, release_device_lock
from doctor.jobs.store import Job, JobStore, job_dir

EventSink = Callable[[dict[str, Any]], None]
FLUSH_EVERY_S = 0.5


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


class _Recorder:
    """Buffers events into the store (batched writes) and keeps the job row's progress current."""

    def __init__(self, store: JobStore, job_id: str, on_event: EventSink | None) -> None:
        self.store, self.job_id, self.on_event = store, job_id, on_event
        self.buf: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.row: dict[str, Any] = {}
        self.last: dict[str, dict[str, Any]] = {}

    def add(self, event: dict[str, Any]) -> None:
        # Stamped on arrival (the worker stamps its own): a batched write must not date it at the flush.
        event.setdefault("ts", time.time())
        kind = event.get("event", "log")
        self.last[kind] = event
        if kind == "progress":
            if event.get("phase") == "train":
                self.row.update(step=int(event.get("step", 0)), max_steps=int(event.get("max_steps", 0)))
                if "eta_s" in event:
                    self.row["eta_s"] = event["eta_s"]
            self.row["phase"] = event.get("phase")
        elif kind == "metrics" and event.get("max_steps"):
            self.row.update(step=int(event.get("step", 0)), max_steps=int(event["max_steps"]))
        self.buf.append(event)
        if self.on_event:
            try:
                self.on_event(event)
            except Exception:
                pass
        if len(self.buf) >= 64 or time.monotonic() - self.last_flush > FLUSH_EVERY_S or kind in ("done", "error"):
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.store.add_events(self.job_id, self.buf)
            self.buf = []
        if self.row:
            self.store.update(self.job_id, **self.row)
            self.row = {}
        self.last_flush = time.monotonic()


def _parse(line: str) -> dict[str, Any]:
    line = line.strip()
    if line.startswith("{"):
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):
                obj.setdefault("event", "log")
                return obj
        except ValueError:
            pass
    return {"event": "log", "message": line}


def run_job(
    store: JobStore,
    job_id: str,
    *,
    launcher: str = "local",
    on_event: EventSink | None = None,
    lock_fd: int | None = None,
) -> Job:
    """Run a queued job to the end (worker + finalize + re-probe); returns the final job record."""
    job = store.get(job_id)
    spec = job.spec
    jd = job_dir(store.root, job.id)
    jd.mkdir(parents=True, exist_ok=True)
    spec_path = jd / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    out = jd / "out"
    rec = _Recorder(store, job.id, on_event)
    held: list[int] = []

    def release() -> None:  # idempotent: the device is free once the worker is gone, before the bookkeeping
        while held:
            release_device_lock(held.pop())

    try:
        if lock_fd is None:
            lock_fd = acquire_device_lock(store.root, device_key(spec), job.id)
        held.append(lock_fd)
        # Record the holder for the "busy" message (an inherited lock was taken as "pending").
        os.ftruncate(lock_fd, 0)
        os.pwrite(lock_fd, json.dumps({"job": job.id, "pid": os.getpid()}).encode(), 0)
    except Exception as exc:
        release()
        store.set_state(job.id, "failed", str(exc))
        return store.get(job.id)
    try:
        return _run_locked(store, job, spec, spec_path, out, rec, launcher, release)
    finally:
        release()


def _run_locked(
    store: JobStore,
    job: Job,
    spec: dict[str, Any],
    spec_path: Path,
    out: Path,
    rec: _Recorder,
    launcher: str,
    release_device: Callable[[], None],
) -> Job:
    # The device lock is released before the job's end state is written, so whoever sees the job end
    # (a test, the TUI, a CI script) can start the next job on that device at once.
    if store.get(job.id).cancel_requested:
        release_device()
        store.set_state(job.id, "cancelled", "cancelled before it started")
        return store.get(job.id)
    families = cmp.FAMILIES[spec["kind"]]
    before: dict[str, Any] = {}

    def probe_before() -> None:  # runs while the worker loads the model
        try:
            before.update(cmp.findings_snapshot([Path(spec["rollout"])], families))
        except Exception as exc:  # a re-probe problem must not fail the job
            before.update({"findings": [], "families": list(families), "error": f"{type(exc).__name__}: {exc}"})

    probe_thread = threading.Thread(target=probe_before, daemon=True)
    cmd = worker_command(spec_path, launcher if launcher != "slurm" else "local", spec.get("num_processes", 1))
    cmd += ["--out", str(out)]
    log_path = spec_path.parent / "worker.log"
    rec.add({"event": "log", "message": "launch: " + " ".join(cmd)})
    with log_path.open("ab") as errlog:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=errlog,
            stdin=subprocess.DEVNULL,
            env=worker_env(spec.get("device", "auto")),
            cwd=str(Path(__file__).resolve().parents[2]),
            start_new_session=True,  # its own process group: cancel reaches torchrun/accelerate children
            text=True,
            bufsize=1,
        )
    store.set_state(job.id, "running", worker_pid=proc.pid, monitor_pid=os.getpid())
    probe_thread.start()
    if store.get(job.id).cancel_requested:  # cancel raced the start
        _terminate(proc)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip():
                rec.add(_parse(line))
    except KeyboardInterrupt:  # Ctrl-C on `doctor jobs run`: stop the worker cleanly, then record the end
        store.request_cancel(job.id)
        _terminate(proc)
        for line in proc.stdout:
            if line.strip():
                rec.add(_parse(line))
    rc = proc.wait()
    release_device()
    rec.flush()
    probe_thread.join()
    job = store.get(job.id)
    last = rec.last
    if "done" in last and rc == 0:
        try:
            return _finalize(store, job, spec, out, last["done"], before, rec)
        except Exception as exc:
            rec.add({"event": "error", "message": f"finalize failed: {type(exc).__name__}: {exc}"})
            rec.flush()
            store.set_state(job.id, "failed", f"finalize failed: {type(exc).__name__}: {exc}")
            return store.get(job.id)
    step = f" at step {job.step}/{job.max_steps}" if job.max_steps else ""
    if "cancelled" in last or job.cancel_requested:
        store.set_state(job.id, "cancelled", f"cancelled on request{step}", eta_s=None)
        return store.get(job.id)
    if rc < 0:
        reason = f"worker killed by {_signal_name(rc)}{step}"
    elif "error" in last:
        reason = last["error"].get("message", "worker error") + step
    else:
        reason = f"worker exited with code {rc}{step}"
    rec.add({"event": "log", "message": f"job failed: {reason}; see {log_path}"})
    rec.flush()
    store.set_state(job.id, "failed", reason, eta_s=None)
    return store.get(job.id)


def _terminate(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def escalate() -> None:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    threading.Thread(target=escalate, daemon=True).start()


# ---------------------------------------------------------------- outputs


def _registry_path(root: Path) -> Path:
    from doctor.core.manifest import read_manifest, resolve

    try:
        m = read_manifest(root / "rollout.toml")
        reg = resolve(root, (m.get("serving") or {}).get("registry"))
        if reg is not None:
            return reg
    except Exception:
        pass
    return root / "registry.yaml"


def _next_version(root: Path, name: str, registry: Path) -> int:
    """One more than any version the registry, the manifest or the adapters folder knows. A registry or
    manifest that cannot be read is an error, never "no versions yet": that would reuse a number."""
    versions = [0]
    if registry.is_file():
        from probes.registry.store import load

        try:
            entries = load(registry).versions(name)
        except Exception as exc:
            raise RuntimeError(
                f"cannot number the new {name} version: {registry} could not be read ({type(exc).__name__}: {exc})"
            ) from exc
        versions += [e["version"] for e in entries if isinstance(e.get("version"), int)]
    manifest = root / "rollout.toml"
    if manifest.is_file():
        from doctor.core.manifest import read_manifest

        try:
            adapters = read_manifest(manifest).get("adapters", [])
            versions += [int(a.get("version", 0)) for a in adapters if a.get("name") == name]
        except Exception as exc:
            raise RuntimeError(
                f"cannot number the new {name} version: {manifest} could not be read ({type(exc).__name__}: {exc})"
            ) from exc
    v = max(versions) + 1
    while (root / "adapters" / f"{name}-v{v}").exists():
        v += 1
    return v


def install_adapter(root: Path, name: str, src: Path, job: Job) -> tuple[Path, int]:
    """Copy the adapter into a temp folder beside its final place, then rename it there (never overwrite)."""
    registry = _registry_path(root)
    version = _next_version(root, name, registry)
    adapters = root / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    final = adapters / f"{name}-v{version}"
    tmp = adapters / f".{name}-v{version}.tmp-{job.id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    provenance = {"job": job.id, "kind": job.kind, "spec": job.spec, "version": version}
    (tmp / "doctor_job.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(tmp)
        raise FileExistsError(f"{final} appeared while the job ran; nothing was overwritten")
    os.rename(tmp, final)
    return final, version


def register(
    root: Path,
    name: str,
    version: int,
    folder: Path,
    spec: dict[str, Any],
    out: Path,
    verdict: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the new version as the verdict says: `canary` when fixed (one canary per name: the one it
    replaces is retired, or rejected when the re-probe found it broken), else `rejected`. rollback_to is
    the last version that passed the gate (probes.registry.store.add_version)."""
    registry = _registry_path(root)
    quant = (spec.get("recipe") or {}).get("quantization") if spec.get("method") == "qlora" else None
    fixed = bool(verdict) and verdict.get("verdict") == "fixed"
    entry = {
        "name": name,
        "version": version,
        "path": os.path.relpath(folder, registry.parent),
        "base_model": spec.get("base_model_name") or spec["base_model"],
        "quantization": (quant or {}).get("bnb_4bit_quant_type", "nf4") if quant else "none",
        "method": spec.get("method", "lora"),
        "training_run": os.path.relpath(out / "train", registry.parent),
        "eval_report": os.path.relpath(out / "eval" / "candidate.csv", registry.parent),
        "status": "canary" if fixed else "rejected",
        "gate": "passed" if fixed else "failed",
        "verdict": (verdict or {}).get("verdict", "not_fixed"),
    }
    from probes.registry.store import add_version

    broken = _broken_versions(root, name, spec) if fixed and verdict and verdict.get("targeted") else set()
    return add_version(registry, entry, known_broken=broken)


def _broken_versions(root: Path, name: str, spec: dict[str, Any]) -> set[int]:
    """The versions the rollout's manifest lists for `name`: the before-probe found errors in them."""
    try:
        from doctor.core.manifest import read_manifest

        return {
            int(a["version"])
            for a in read_manifest(root / "rollout.toml").get("adapters", [])
            if a.get("name") == name and isinstance(a.get("version"), int)
        }
    except Exception:
        return set()


def _finalize(
    store: JobStore,
    job: Job,
    spec: dict[str, Any],
    out: Path,
    done: dict[str, Any],
    before: dict[str, Any],
    rec: _Recorder,
) -> Job:
    root = Path(spec["rollout"])
    outputs: dict[str, Any] = {"out_dir": str(out)}
    if spec["kind"] == "parity":  # a measurement, not a fix: its verdict is the parity verdict (doctor/jobs/parity.py)
        par = done.get("parity") or {}
        outputs.update(parity=par, parity_report=done.get("parity_report"))
        verdict = {"verdict": par.get("verdict"), "gate_passed": bool(par.get("passed")), "why": par.get("why", "")}
        rec.add({"event": "verdict", "verdict": verdict["verdict"], "message": verdict["why"]})
        rec.flush()
        comparison = {"verdict": verdict, "parity": par}
        store.set_state(job.id, "succeeded", outputs=outputs, comparison=comparison, eta_s=0, phase="done")
        return store.get(job.id)
    if spec["kind"] == "retrain":
        name = spec.get("adapter_name", "adapter")
        folder, version = install_adapter(root, name, out / "adapter", job)
        outputs.update(adapter=str(folder), version=version, train_dir=str(out / "train"))
        rec.add({"event": "log", "message": f"new adapter version {name} v{version}: {folder}"})
    if done.get("eval_table"):
        outputs["eval_table"] = done["eval_table"]
    if done.get("eval"):
        outputs["eval"] = done["eval"]
    if done.get("train"):
        outputs["train"] = done["train"]
    if done.get("lab"):  # a lab variant's measurements (doctor/jobs/lab.py)
        outputs["lab"] = done["lab"]
    store.update(job.id, outputs=outputs, phase="reprobe")
    rec.add({"event": "log", "message": "re-probing the outputs (doctor check)"})
    rec.flush()
    comparison = reprobe(spec, out, job.id, before, done)
    verdict = comparison["verdict"]
    rec.add({"event": "comparison", **{k: comparison[k] for k in ("before", "after")}})
    rec.add({"event": "verdict", "verdict": verdict["verdict"], "message": verdict["why"]})
    if spec["kind"] == "retrain" and spec.get("register", True):
        try:
            entry = register(root, name, version, folder, spec, out, verdict)
            outputs["registry"] = {"path": str(_registry_path(root)), "entry": entry}
            rec.add(
                {
                    "event": "log",
                    "message": f"registered {name} v{version} as {entry.get('status')} "
                    f"(rollback_to {entry.get('rollback_to')})",
                }
            )
        except Exception as exc:
            outputs["registry_error"] = f"{type(exc).__name__}: {exc}"
            rec.add({"event": "log", "message": f"registry not updated: {exc}"})
    rec.flush()
    store.set_state(job.id, "succeeded", outputs=outputs, comparison=comparison, eta_s=0, phase="done")
    return store.get(job.id)


def reprobe(
    spec: dict[str, Any], out: Path, job_id: str, before: dict[str, Any], done: dict[str, Any]
) -> dict[str, Any]:
    from doctor.core.manifest import read_manifest, resolve

    root = Path(spec["rollout"])
    cmp.write_after_manifest(spec, out, job_id)
    families = cmp.FAMILIES[spec["kind"]]
    if not before.get("findings") and "error" not in before and not before:
        before.update(cmp.findings_snapshot([root], families))
    after = cmp.findings_snapshot([out], families)
    try:
        ev = read_manifest(root / "rollout.toml").get("eval", {})
    except Exception:
        ev = {}
    cands = ev.get("candidates") or []
    before_table = resolve(root, cands[0]) if cands else None
    extra: dict[str, Any] = {}
    if done.get("train"):
        t = done["train"]
        extra["training"] = {k: t.get(k) for k in ("global_step", "final_loss", "train_loss", "first_non_finite_step")}
    if before.get("error"):
        extra["before_error"] = before["error"]
    from doctor.jobs.verdict import judge

    after_table = Path(done["eval_table"]) if done.get("eval_table") else None
    baseline_table = resolve(root, ev.get("baseline"))
    extra["verdict"] = judge(
        before,
        after,
        kind=spec["kind"],
        before_table=before_table,
        after_table=after_table,
        baseline_table=baseline_table,
    )
    return cmp.compare(
        before,
        after,
        before_table=before_table,
        after_table=after_table,
        baseline_table=baseline_table,
        extra=extra,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m doctor.jobs.monitor")
    ap.add_argument("--rollout", required=True, type=Path)
    ap.add_argument("--job", required=True)
    ap.add_argument("--launcher", default="local")
    ap.add_argument("--lock-fd", type=int)
    opts = ap.parse_args(argv)
    store = JobStore(opts.rollout)
    job = run_job(store, opts.job, launcher=opts.launcher, lock_fd=opts.lock_fd)
    print(f"job {job.id}: {job.state}" + (f" ({job.error})" if job.error else ""), flush=True)
    from doctor.jobs.verdict import passed

    return 0 if passed(job) else 1


if __name__ == "__main__":
    sys.exit(main())
