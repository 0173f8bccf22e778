"""Benchmark: check a registry of 1,000 adapters (headers + configs only) on one core and on all cores.

    .venv/bin/python bench/registry.py [--adapters 1000] [--repeat 3]

Builds a throw-away rollout (registry.yaml with N adapter versions, each a real adapter_config.json +
adapter_model.safetensors of 28 small LoRA tensors, and a vLLM config routing one of them), then runs the
registry probe (per-entry disk facts: folder, config, safetensors header) followed by the serving
probe's rollout pass (compatibility of every registered version with the server: rank cap, DoRA, bias,
keys, base dims). REG004 (sha256) is disabled, so no weight bytes are read. The registry probe's
parallel path is a process pool (REG007 params `workers`, `parallel_min`). Prints adapters/second for
workers=1 and workers=all and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doctor.core.probe import ProbeContext
from doctor.core.settings import Settings
from doctor.engine import group_rollouts
from probes import discover
from probes.registry.probe import RegistryProbe
from probes.serving.probe import ServingProbe

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        r = (4, 8, 16)[i % 3]
        folder = root / "adapters" / f"a{i:04d}"
        folder.mkdir(parents=True)
        tensors = {}
        for layer in range(2):
            for m in MODULES:
                key = f"base_model.model.model.layers.{layer}.mlp.{m}"
                tensors[f"{key}.lora_A.weight"] = rng.standard_normal((r, 8), dtype=np.float32)
                tensors[f"{key}.lora_B.weight"] = rng.standard_normal((8, r), dtype=np.float32)
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        cfg = {
            "peft_type": "LORA",
            "r": r,
            "lora_alpha": 2 * r,
            "target_modules": list(MODULES),
            "bias": "none",
            "base_model_name_or_path": "peft-doctor/tiny-base",
            "use_dora": False,
            "modules_to_save": None,
        }
        (folder / "adapter_config.json").write_text(json.dumps(cfg))
        entries.append(
            {
                "name": f"bot-{i:04d}",
                "version": 1,
                "path": f"adapters/a{i:04d}",
                "sha256": "0" * 64,
                "base_model": "peft-doctor/tiny-base",
                "status": "retired",
                "rollback_to": None,
            }
        )
    (root / "registry.yaml").write_text(
        yaml.safe_dump({"schema": "peft-doctor/registry/1", "adapters": entries}, sort_keys=False)
    )
    (root / "serving").mkdir()
    (root / "serving" / "vllm.yaml").write_text(
        "model: peft-doctor/tiny-base\nenable-lora: true\nmax-lora-rank: 8\n"
        "lora-modules: ['bot-0000=./adapters/a0000']\n"
    )


def run_once(root: Path, workers: int, n: int) -> tuple[float, int]:
    settings = Settings(disable={"REG004"}, thresholds={"REG007": {"workers": workers, "parallel_min": 64}})
    (rollout,) = group_rollouts([a for a in discover(root) if a.kind in ("registry", "serving_config")], root)
    ctx = ProbeContext(settings=settings, rollout=rollout)  # a fresh scan session: nothing memoized yet
    reg_probe, srv_probe = RegistryProbe(), ServingProbe()
    t0 = time.perf_counter()
    findings = []
    for a in rollout.artifacts:
        probe = reg_probe if a.kind == "registry" else srv_probe
        findings += list(probe.check(a, ctx))
    findings += list(srv_probe.check_rollout(rollout, ctx))
    findings += list(reg_probe.check_rollout(rollout, ctx))
    dt = time.perf_counter() - t0
    rows = next(a for a in rollout.artifacts if a.kind == "serving_config").facts["compatibility"]
    assert len(rows) == n, len(rows)
    return dt, sum(1 for r in rows if r["ok"] is False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="doctor-bench-registry-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root, args.adapters)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"built {args.adapters} adapters in {time.perf_counter() - t0:.1f}s "
            f"({cores} cores, load average {load:.1f})"
        )
        results = {}
        for workers in (1, cores):
            times = []
            for _ in range(args.repeat):
                dt, bad = run_once(root, workers, args.adapters)
                times.append(dt)
            best = min(times)
            results[workers] = best
            print(
                f"workers={workers}: best of {args.repeat} {best:.3f}s  → {args.adapters / best:,.0f} adapters/s "
                f"({bad} incompatible with max-lora-rank 8)"
            )
        if cores > 1:
            print(f"speed-up with {cores} workers over 1: {results[1] / results[cores]:.2f}x")


if __name__ == "__main__":
    main()
