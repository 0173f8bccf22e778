"""GPU discovery (nvidia-smi, never torch), the VRAM estimate, and the one-job-per-device lock.

Light module.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class JobLockError(RuntimeError):
    """Another job holds the device."""


@dataclass
class Gpu:
    index: int
    name: str
    total_mib: int
    used_mib: int

    @property
    def free_bytes(self) -> int:
        return (self.total_mib - self.used_mib) * 1024 * 1024


def visible_gpus() -> list[Gpu]:
    """GPUs from `nvidia-smi` (empty when it is absent, fails, or CUDA_VISIBLE_DEVICES hides them all)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        proc = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    gpus = []
    for line in proc.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            try:
                gpus.append(Gpu(int(parts[0]), parts[1], int(float(parts[2])), int(float(parts[3]))))
            except ValueError:
                continue
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis:
        wanted = {v.strip() for v in vis.split(",")}
        gpus = [g for g in gpus if str(g.index) in wanted] or gpus
    return gpus


def _param_count(model_dir: Path) -> int | None:
    """Sum of tensor sizes from the safetensors headers (no weights read)."""
    total = 0
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    for f in files:
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for k, v in header.items():
            if k == "__metadata__":
                continue
            size = 1
            for d in v.get("shape", []):
                size *= d
            total += size
    return total


def estimate_vram(spec: dict[str, Any]) -> dict[str, Any]:
    """Bytes a retrain needs: base (4-bit or 16-bit) + adapter + grads + Adam states + activations."""
    model_dir = Path(spec["base_model"])
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    h = int(cfg.get("hidden_size", 4096))
    layers = int(cfg.get("num_hidden_layers", 32))
    inter = int(cfg.get("intermediate_size", 4 * h))
    vocab = int(cfg.get("vocab_size", 32000))
    heads = int(cfg.get("num_attention_heads", 32))
    kv = int(cfg.get("num_key_value_heads", heads))
    head_dim = int(cfg.get("head_dim", h // max(heads, 1)))
    attn = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    params = _param_count(model_dir) or layers * (attn + 3 * h * inter) + 2 * vocab * h
    recipe = spec.get("recipe") or {}
    quant = recipe.get("quantization") if spec.get("method") == "qlora" else spec.get("quantization")
    four_bit = bool(quant and quant.get("load_in_4bit"))
    embed = 2 * vocab * h if not cfg.get("tie_word_embeddings") else vocab * h
    # 4-bit: linear layers at ~0.5 byte + quant constants; embeddings / head stay 16-bit
    base = int((params - embed) * 0.5 * 1.07 + embed * 2) if four_bit else params * 2
    lora = recipe.get("lora") or {}
    r = int(lora.get("r", 8))
    shapes = {
        "q_proj": (h, heads * head_dim),
        "k_proj": (h, kv * head_dim),
        "v_proj": (h, kv * head_dim),
        "o_proj": (heads * head_dim, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    targets = lora.get("target_modules") or ["q_proj", "v_proj"]
    if targets == "all-linear":
        targets = list(_LINEAR)
    adapter_params = layers * sum(r * (i + o) for t, (i, o) in shapes.items() if t in targets)
    adapter = adapter_params * 4  # fp32 trainable weights
    grads = adapter_params * 4
    optim = adapter_params * 8  # Adam m and v
    batch = int(recipe.get("per_device_train_batch_size", 8))
    seq = int(spec.get("max_length") or recipe.get("max_seq_length") or 512)
    ckpt = bool(recipe.get("gradient_checkpointing"))
    per_layer = batch * seq * h * 2 * (2 if ckpt else 16)  # bf16 activations kept for backward
    activations = layers * per_layer + batch * seq * vocab * 4 * 2  # + fp32 logits and their grad
    overhead = int(0.5 * GIB)
    total = base + adapter + grads + optim + activations + overhead
    return {
        "params": params,
        "adapter_params": adapter_params,
        "base_bytes": base,
        "adapter_bytes": adapter + grads,
        "optimizer_bytes": optim,
        "activation_bytes": activations,
        "overhead_bytes": overhead,
        "total_bytes": total,
        "base_precision": "4-bit" if four_bit else "16-bit",
    }


def vram_warning(spec: dict[str, Any], gpus: list[Gpu] | None = None) -> str | None:
    """A warning when the estimate exceeds the free memory of the visible GPU (None when it fits/no GPU)."""
    if spec.get("device") == "cpu":
        return None
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        return None
    est = estimate_vram(spec)
    gpu = gpus[0]
    if est["total_bytes"] <= gpu.free_bytes:
        return None
    return (
        f"this job needs about {est['total_bytes'] / GIB:.1f} GiB ({est['base_precision']} base "
        f"{est['base_bytes'] / GIB:.1f} + adapter/grads {est['adapter_bytes'] / GIB:.2f} + optimizer "
        f"{est['optimizer_bytes'] / GIB:.2f} + activations {est['activation_bytes'] / GIB:.1f} GiB) but GPU "
        f"{gpu.index} ({gpu.name}) has {gpu.free_bytes / GIB:.1f} GiB free: lower per_device_train_batch_size, "
        "enable gradient_checkpointing, or use qlora"
    )


def device_key(spec: dict[str, Any], gpus: list[Gpu] | None = None) -> str:
    """The device a job occupies: `cuda<i>` for the first visible GPU, else `cpu`."""
    if spec.get("device") == "cpu":
        return "cpu"
    gpus = visible_gpus() if gpus is None else gpus
    return f"cuda{gpus[0].index}" if gpus else "cpu"


MACHINE_LOCK_DIR = "peft-doctor-locks"


def lock_dir(rollout_root: Path, device: str = "cpu") -> Path:
    """Where a device's lock lives. A GPU is one per machine, whichever rollout a job comes from: its lock
    is in a machine-wide folder (DOCTOR_LOCK_DIR, else `<tmp>/peft-doctor-locks`). The CPU can run jobs of
    different rollouts side by side; its lock stays per rollout (`<rollout>/.doctor/locks`)."""
    env = os.environ.get("DOCTOR_LOCK_DIR")
    if env:
        return Path(env)
    if device == "cpu":
        return Path(rollout_root) / ".doctor" / "locks"
    import tempfile

    return Path(tempfile.gettempdir()) / MACHINE_LOCK_DIR


def acquire_device_lock(rollout_root: Path, device: str, job_id: str) -> int:
    """An fcntl lock on `<lock dir>/<device>.lock`; returns the fd (the lock lives while it is open)."""
    import fcntl

    folder = lock_dir(rollout_root, device)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{device}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if device != "cpu" and not os.environ.get("DOCTOR_LOCK_DIR"):
        try:  # the machine-wide folder is shared by every user of the GPU
            folder.chmod(0o1777)
            os.fchmod(fd, 0o666)
        except OSError:
            pass
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, OSError):
            holder = {}
        os.close(fd)
        other = holder.get("job", "another job")
        raise JobLockError(
            f"{device} is busy: job {other} (pid {holder.get('pid', '?')}) holds {path}; one job per device at "
            f"a time — wait for it, or stop it with `doctor jobs cancel {other}`"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"job": job_id, "pid": os.getpid()}).encode(), 0)
    return fd


def release_device_lock(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
