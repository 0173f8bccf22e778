"""How a job's worker is started: local (default), `accelerate launch` / `torchrun`, or Slurm (sbatch).

Light module: builds exact command lines and scripts; it never imports torch.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("local", "accelerate", "torchrun", "slurm")
WORKER_MODULE = "doctor.jobs.worker"


class LaunchError(RuntimeError):
    """A launcher that cannot start (unknown name, missing tool)."""


def worker_command(
    spec_path: Path, launcher: str = "local", num_processes: int = 1, python: str | None = None
) -> list[str]:
    """The exact argv that runs the worker for `spec_path` under a launcher (slurm: the in-allocation one)."""
    py = python or sys.executable
    spec = str(spec_path)
    if launcher in ("local", "slurm") and num_processes <= 1:
        return [py, "-m", WORKER_MODULE, spec]
    if launcher == "accelerate":
        return [
            py, "-m", "accelerate.commands.launch",
            "--num_processes", str(num_processes), "--num_machines", "1",
            *(["--multi_gpu"] if num_processes > 1 else []),
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", WORKER_MODULE, spec,
        ]  # fmt: skip
    if launcher in ("torchrun", "slurm"):
        return [
            py, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc_per_node", str(num_processes), "-m", WORKER_MODULE, spec,
        ]  # fmt: skip
    if launcher == "local":
        raise LaunchError(f"launcher local runs one process; use accelerate or torchrun for {num_processes}")
    raise LaunchError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")


def sbatch_script(
    job_id: str,
    rollout_root: Path,
    job_dir: Path,
    num_gpus: int = 1,
    python: str | None = None,
    partition: str | None = None,
    time_limit: str = "04:00:00",
) -> str:
    """An sbatch script that runs the job's monitor (which runs the worker and records into the store)."""
    py = python or sys.executable
    repo = Path(__file__).resolve().parents[2]
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=peft-doctor-{job_id}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --gres=gpu:{num_gpus}",
        f"#SBATCH --cpus-per-task={max(4, 4 * num_gpus)}",
        f"#SBATCH --time={time_limit}",
        f"#SBATCH --output={job_dir / 'slurm-%j.out'}",
        *([f"#SBATCH --partition={partition}"] if partition else []),
        "set -euo pipefail",
        f"cd {shlex.quote(str(repo))}",
        f"export PYTHONPATH={shlex.quote(str(repo))}${{PYTHONPATH:+:$PYTHONPATH}}",
        " ".join(
            shlex.quote(a)
            for a in [
                py,
                "-m",
                "doctor.jobs.monitor",
                "--rollout",
                str(rollout_root),
                "--job",
                job_id,
                "--launcher",
                "torchrun" if num_gpus > 1 else "local",
            ]
        ),
        "",
    ]
    return "\n".join(lines)


def submit_sbatch(script_path: Path) -> tuple[str | None, str]:
    """(slurm job id or None, message). Submits only when `sbatch` is on PATH."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return None, f"sbatch is not on PATH; the script is at {script_path} (submit it with: sbatch {script_path})"
    proc = subprocess.run([sbatch, "--parsable", str(script_path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise LaunchError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    slurm_id = proc.stdout.strip().split(";")[0]
    return slurm_id, f"submitted Slurm job {slurm_id} ({script_path})"


def worker_env(spec_device: str = "auto") -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if spec_device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
