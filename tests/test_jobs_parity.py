"""The parity job: spec, playbook action, and real runs on the demo world (transformers + peft on CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.jobs.parity import probe_set
from doctor.jobs.spec import SpecError, spec_from_action, validate_spec
from tests.conftest import FIXTURES, ROLLOUTS


def world(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "fixtures"
    for part in ("models", "data"):
        shutil.copytree(FIXTURES / part, dst / part)
    shutil.copytree(ROLLOUTS / name, dst / "rollouts" / name, ignore=shutil.ignore_patterns(".doctor"))
    return dst / "rollouts" / name


def test_parity_spec_from_the_rollout(tmp_path):
    root = world(tmp_path, "qlora-unstable")
    spec = spec_from_action(root, {"kind": "job", "job": {"kind": "parity"}})
    assert spec["kind"] == "parity" and spec["adapter"].endswith("adapter") and spec["eval_set"].endswith("eval.jsonl")
    assert spec["quantization"]["load_in_4bit"] and spec["probes"] == 40 and spec["tolerance"] == 0.05
    (root / "merged").mkdir()
    with pytest.raises(SpecError, match=r"merged .*config\.json and safetensors"):
        validate_spec({**spec, "merged": str(root / "merged")})
    with pytest.raises(SpecError, match="unknown parity spec field"):
        validate_spec({**spec, "recipe": {}})


def test_probe_set_spreads_over_slices():
    rows = [{"slice": s, "i": i} for s in ("a", "b", "c") for i in range(5)]
    got = probe_set(rows, 7)
    assert [r["slice"] for r in got] == ["a", "b", "c", "a", "b", "c", "a"]


def test_serving_mismatch_playbook_offers_parity():
    out = subprocess.run(
        [sys.executable, "-m", "doctor", "triage", str(ROLLOUTS / "serving-mismatch"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    tri = json.loads(out.stdout)
    jobs = [a["job"] for a in tri["diagnosis"]["actions"] if a["kind"] == "job"]
    assert {"kind": "parity"} in [{"kind": j.get("kind")} for j in jobs], tri["diagnosis"]["actions"]


# ------------------------------------------------------------------ real runs (slow)


@pytest.fixture
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: more threads only thrash
    yield
    torch.set_num_threads(n)


def _spec(root: Path, **kw) -> dict:
    return {**spec_from_action(root, {"kind": "parity"}), "probes": 10, "max_new_tokens": 8, **kw}


@pytest.mark.slow
def test_parity_job_on_the_healthy_adapter(tmp_path, monkeypatch):
    from doctor.jobs import api

    root = world(tmp_path, "healthy")
    monkeypatch.setenv("DOCTOR_JOB_THREADS", "1")
    job = api.run(_spec(root), root)
    assert job.state == "succeeded", job.error
    par = job.outputs["parity"]
    assert job.comparison["verdict"]["verdict"] == "ok" and job.comparison["verdict"]["gate_passed"]
    ba, am = par["pairs"]["base_vs_adapter"], par["pairs"]["adapter_vs_merged"]
    assert ba["max_logit_diff"] > 0.1  # not a no-op: the adapter moves the logits
    assert am["token_agreement"] == 1.0 and am["relative_to_adapter_effect"] < 1e-3  # merge_and_unload matches
    assert set(par["accuracy"]["adapter"]["slices"]) == {"arithmetic", "count", "reverse", "safety", "uppercase"}
    assert Path(job.outputs["parity_report"]).is_file()
    from doctor.render.jobs_report import render_comparison  # what `doctor jobs show` prints

    text = "\n".join(render_comparison(job.comparison))
    assert "Parity on 10 probes" in text and "adapter_vs_merged" in text and "arithmetic" in text


@pytest.mark.slow
def test_wrong_scale_merged_export_and_zero_adapter_are_caught(tmp_path, one_thread):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from doctor.jobs.parity import run_parity

    root = world(tmp_path, "healthy")
    spec = _spec(root)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(spec["base_model"]), spec["adapter"])
    for mod in model.modules():
        if isinstance(getattr(mod, "scaling", None), dict):
            for k in mod.scaling:
                mod.scaling[k] *= 2  # a merge script that used alpha/r twice
    model.merge_and_unload().save_pretrained(tmp_path / "merged-wrong")
    par = run_parity({**spec, "merged": str(tmp_path / "merged-wrong")}, tmp_path / "o1", lambda e: None)["parity"]
    am = par["pairs"]["adapter_vs_merged"]
    assert par["verdict"] == "merge_mismatch" and not par["passed"]
    assert am["relative_to_adapter_effect"] > 0.5 and "differs from the live adapter" in par["why"]

    zero = tmp_path / "zero"
    shutil.copytree(spec["adapter"], zero)
    w = load_file(str(zero / "adapter_model.safetensors"))
    save_file(
        {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in w.items()}, str(zero / "adapter_model.safetensors")
    )
    par = run_parity({**spec, "adapter": str(zero)}, tmp_path / "o2", lambda e: None)["parity"]
    assert par["verdict"] == "no_op" and par["pairs"]["base_vs_adapter"]["max_logit_diff"] == 0.0


@pytest.mark.slow
def test_qlora_per_layer_quantization_error(tmp_path, one_thread):
    from doctor.jobs.parity import run_parity

    root = world(tmp_path, "qlora-unstable")
    par = run_parity(_spec(root, probes=5, max_new_tokens=4), tmp_path / "o", lambda e: None)["parity"]
    rows = par["quantization"]
    assert rows and all(r["quant_error"] > 0 and r["update"] >= 0 for r in rows)
    assert any(r["module"].endswith("q_proj") for r in rows)
    assert par["quantization_notes"] and "4-bit round trip" in par["quantization_notes"][0]
