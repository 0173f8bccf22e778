"""`doctor lab run` for real, headless, on a private copy of the demo world with a lean budget (slow).

prompt-only + LoRA r in {2, 4} + QLoRA at the chosen rank, a 700-token budget each, 20 eval examples per slice: the JSON
validates against docs/lab.schema.json, the chosen rank follows the rule, the report's numbers are the jobs'
own outputs, the canary plan guards a canary table, and a re-run reuses every finished job.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import jsonschema
import pytest

from doctor.jobs.store import JobStore, job_dir
from tests.conftest import FIXTURES, REPO, ROLLOUTS, run_doctor
from tests.test_lab import write_spec

pytestmark = pytest.mark.slow
SCHEMA = json.loads((REPO / "docs" / "lab.schema.json").read_text())


def _numel(safetensors: Path) -> int:
    with safetensors.open("rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    total = 0
    for k, v in header.items():
        if k != "__metadata__":
            n = 1
            for d in v["shape"]:
                n *= d
            total += n
    return total


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_lean_lab_end_to_end(tmp_path):
    dst = tmp_path / "fixtures"
    for part in ("models", "data"):
        shutil.copytree(FIXTURES / part, dst / part)
    shutil.copytree(ROLLOUTS / "healthy", dst / "rollouts" / "healthy", ignore=shutil.ignore_patterns(".doctor"))
    root = dst / "rollouts" / "healthy"
    spec = write_spec(
        tmp_path,
        root,
        **{
            "variants.lora": {"ranks": [2, 4], "alpha_per_rank": 2.0},
            # the token budget ends every trained run before its 12 steps (the budget callback)
            "budget": {"max_steps": 12, "per_device_train_batch_size": 8, "max_tokens": 700, "max_train_s": 120},
            "measure": {"latency_requests": 3, "max_new_tokens": 8},
            "target": {"min_slice_gain": -0.5, "slice_ceiling": 0.95, "min_overall": 0.0},
        },
    )
    text = spec.read_text().replace("max_per_slice = 0 ", "max_per_slice = 20 ")
    spec.write_text(text)
    env = {"DOCTOR_JOB_THREADS": "1"}
    proc = run_doctor("lab", "run", str(spec), "--format", "json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    rows = {v["name"]: v for v in report["variants"]}
    assert list(rows)[:3] == ["prompt_only", "lora-r2", "lora-r4"] and len(rows) == 4
    assert all(v["state"] == "succeeded" for v in rows.values()), proc.stderr
    # the chosen variant is the smallest LoRA rank that meets the target; exit 0 iff some variant meets it
    meeting = sorted(v["rank"] for v in rows.values() if v["method"] == "lora" and v["meets_target"])
    assert report["chosen"] == (f"lora-r{meeting[0]}" if meeting else None)
    assert proc.returncode == (0 if any(v["meets_target"] for v in rows.values()) else 1)
    qlora = next(v for v in rows.values() if v["method"] == "qlora")
    assert qlora["rank"] == (meeting[0] if meeting else qlora["rank"])
    # every number for every trained row, and they are the jobs' own outputs
    store = JobStore(root)
    for v in rows.values():
        job = store.get(v["job"])
        out = job.outputs
        assert v["overall"] == out["eval"]["accuracy"]
        for sl, s in out["eval"]["slices"].items():
            assert v["slices"][sl]["accuracy"] == s["accuracy"] and v["slices"][sl]["n"] == s["n"] == 20
        lab = out["lab"]
        assert v["latency_ms"]["p50"] > 0 and v["decode_tokens_per_s"] > 0
        if v["method"] == "prompt_only":
            assert v["trainable_params"] is None and v["memory_kind"] is None
            assert v["latency_ms"]["p50"] == lab["serving"]["base"]["p50"]
            continue
        worker_out = job_dir(root, job.id) / "out"
        for key in ("trainable_params", "adapter_bytes", "peak_memory_bytes", "memory_kind", "train_tokens_per_s"):
            assert v[key] == lab[key] and v[key] is not None, key
        assert v["memory_kind"] == "process_peak_rss" and v["peak_memory_bytes"] > 10 * 2**20
        assert v["adapter_bytes"] == _dir_bytes(worker_out / "adapter")
        assert v["trainable_params"] == _numel(worker_out / "adapter" / "adapter_model.safetensors")
        assert v["latency_ms"] == {k: lab["serving"]["unmerged"][k] for k in ("p50", "p95")}
        assert set(v["serving"]) == {"base", "unmerged", "merged"}
        assert 1 <= v["train_steps"] < 12 and lab["train_tokens"] >= 700, (v["train_steps"], lab["train_tokens"])
    assert rows["lora-r4"]["trainable_params"] == 2 * rows["lora-r2"]["trainable_params"]
    # the canary: its plan guards a canary table made of the chosen variant's own results
    assert report["chosen"], report["why"]
    c = report["canary"]
    src = Path(store.get(rows[report["chosen"]]["job"]).outputs["eval_table"])
    canary = Path(c["eval_table"])
    canary.parent.mkdir(parents=True, exist_ok=True)
    with src.open() as fh:
        lines = list(csv.DictReader(fh))
    for r in lines:
        r["variant"] = "canary"

    def write(rows_: list[dict]) -> None:
        with canary.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows_[0]))
            w.writeheader()
            w.writerows(rows_)

    write(lines)
    ok = run_doctor("check", str(root), "--format", "json")
    rules = [f["rule"] for f in json.loads(ok.stdout)["findings"]]
    assert not {"EVL040", "EVL041", "EVL043"} & set(rules), ok.stdout
    write([{**r, "score": "0"} if r["slice"] == "arithmetic" else r for r in lines])
    bad = run_doctor("check", str(root), "--format", "json")
    found = [f for f in json.loads(bad.stdout)["findings"] if f["rule"] == "EVL040"]
    assert bad.returncode == 1 and [f["locator"] for f in found] == [f"support-bot v{c['version']}:arithmetic"]
    # a re-run reuses every finished job and reaches the same decision
    again = run_doctor("lab", "run", str(spec), "--format", "json", env=env)
    assert again.stderr.count("reused job") == 4, again.stderr
    assert json.loads(again.stdout)["chosen"] == report["chosen"]
