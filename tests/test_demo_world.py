"""The committed demo world (fixtures/): adapters load and generate, quoted numbers match the files.

Heavy imports (torch, transformers, peft) stay inside the tests that load models.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
BASE = FIXTURES / "models" / "tiny-base"
ROLLOUTS = FIXTURES / "rollouts"
SCENARIOS = ["healthy", "diverged", "qlora-unstable", "slice-regression", "serving-mismatch", "corrupt"]
INTACT = [s for s in SCENARIOS if s != "corrupt"]
CAUSES = {
    "healthy": "none",
    "diverged": "lr_too_high",
    "qlora-unstable": "precision_risk",
    "slice-regression": "narrow_data",
    "serving-mismatch": "runtime_incompatible",
    "corrupt": "corrupt_artifacts",
}
BASE_NAME = "peft-doctor/tiny-base"


def truth(name: str) -> dict[str, Any]:
    return json.loads((ROLLOUTS / name / "scenario.json").read_text())


def slice_stats(path: Path) -> dict[str, dict[str, float]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, dict[str, float]] = {}
    for name in {r["slice"] for r in rows}:
        group = [r for r in rows if r["slice"] == name]
        out[name] = {
            "n": len(group),
            "accuracy": sum(float(r["score"]) for r in group) / len(group),
            "refusal_rate": sum(int(r["refused"]) for r in group) / len(group),
        }
    return out


def first_non_finite(history: list[dict[str, Any]]) -> int | None:
    for e in history:
        for key in ("loss", "grad_norm"):
            if key in e and not math.isfinite(e[key]):
                return e["step"]
    return None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adapter_config(name: str) -> dict[str, Any]:
    return json.loads((ROLLOUTS / name / "adapter" / "adapter_config.json").read_text())


def vllm_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROLLOUTS / name / "serving" / "vllm.yaml").read_text())


def registry_entry(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROLLOUTS / name / "registry.yaml").read_text())["adapters"][0]


# ---------------------------------------------------------------- models load and generate


def _generate(model: Any, tokenizer: Any) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    prompts = [
        "### Instruction:\nWhat is 3 + 4?\n### Response:\n",
        "### Instruction:\nUppercase: apple\n### Response:\n",
    ]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[0] == 2 and out.shape[1] > enc["input_ids"].shape[1]
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_base_model_loads_offline_and_has_skill() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(BASE, local_files_only=True).eval()
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert not str(json.loads((BASE / "config.json").read_text()).get("_name_or_path", "")).startswith("/")
    _generate(model, tokenizer)
    base = truth("healthy")["eval"]["baseline"]
    skilled = [s for s, m in base.items() if 0.3 <= m["accuracy"] <= 0.99]
    assert len(skilled) >= 3, f"base should be imperfect but skilled on several slices: {base}"


@pytest.mark.parametrize("name", INTACT)
def test_adapter_loads_onto_base_and_generates(name: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = adapter_config(name)
    assert cfg["base_model_name_or_path"] == BASE_NAME
    kwargs: dict[str, Any] = {}
    if name == "qlora-unstable":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16
        )
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    base = AutoModelForCausalLM.from_pretrained(BASE, **kwargs)
    model = PeftModel.from_pretrained(base, ROLLOUTS / name / "adapter").eval()
    if name == "qlora-unstable":
        assert type(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    _generate(model, tokenizer)


# ---------------------------------------------------------------- quoted numbers match the files


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_cause_and_eval_numbers(name: str) -> None:
    t = truth(name)
    assert t["cause"] == CAUSES[name]
    for variant, file in (("baseline", "baseline.csv"), ("candidate", "candidate.csv")):
        measured = slice_stats(ROLLOUTS / name / "eval" / file)
        for s, m in t["eval"][variant].items():
            assert measured[s]["n"] == m["n"] >= 100
            assert measured[s]["accuracy"] == pytest.approx(m["accuracy"], abs=1e-4)
            assert measured[s]["refusal_rate"] == pytest.approx(m["refusal_rate"], abs=1e-4)


@pytest.mark.parametrize("name", INTACT)
def test_first_non_finite_step_and_final_loss(name: str) -> None:
    t = truth(name)
    state = json.loads((ROLLOUTS / name / "train" / "trainer_state.json").read_text())
    assert first_non_finite(state["log_history"]) == t["first_non_finite_step"]
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == t["global_step"]
    assert str(losses[-1]) == str(t["final_loss"]) or losses[-1] == pytest.approx(t["final_loss"])


def test_diverged_log_is_really_non_finite() -> None:
    t = truth("diverged")
    assert t["first_non_finite_step"] is not None
    assert {"non_finite", "lr_too_high"} <= set(t["symptoms"])
    args = json.loads((ROLLOUTS / "diverged" / "train" / "training_args.json").read_text())
    assert args["max_grad_norm"] == 0.0 and args["learning_rate"] >= 0.1
    assert list((ROLLOUTS / "diverged" / "train" / "runs").glob("events.out.tfevents.*"))


def test_qlora_recipe_and_instability() -> None:
    t = truth("qlora-unstable")
    manifest = tomllib.loads((ROLLOUTS / "qlora-unstable" / "rollout.toml").read_text())
    quant = manifest["recipe"]["quantization"]
    assert quant["load_in_4bit"] and quant["bnb_4bit_quant_type"] == "nf4"
    assert quant["bnb_4bit_compute_dtype"] == "float16"
    assert manifest["rollout"]["method"] == "qlora" and registry_entry("qlora-unstable")["quantization"] == "nf4"
    assert {"loss_spike", "divergence"} & set(t["symptoms"])


def test_slice_regression_drops_other_slices() -> None:
    t = truth("slice-regression")
    base = slice_stats(ROLLOUTS / "slice-regression" / "eval" / "baseline.csv")
    cand = slice_stats(ROLLOUTS / "slice-regression" / "eval" / "candidate.csv")
    trained = t["train_slices"]
    assert trained == ["arithmetic"] and cand["arithmetic"]["accuracy"] > base["arithmetic"]["accuracy"]
    drops = [s for s in base if s not in trained and cand[s]["accuracy"] <= base[s]["accuracy"] - 0.10]
    assert len(drops) >= 2 and sorted(drops) == sorted(t["regressed_slices"])


def test_healthy_is_consistent() -> None:
    t = truth("healthy")
    assert t["symptoms"] == [] and t["first_non_finite_step"] is None
    cfg, serve, reg = adapter_config("healthy"), vllm_config("healthy"), registry_entry("healthy")
    assert cfg["r"] <= serve["max-lora-rank"] and serve["model"] == cfg["base_model_name_or_path"]
    assert serve["enable-lora"] is True and serve["lora-modules"] == ["support-bot=./adapter"]
    assert reg["sha256"] == sha256(ROLLOUTS / "healthy" / "adapter" / "adapter_model.safetensors")
    assert sum(t["eval"]["accuracy_delta"].values()) > 0


def test_serving_mismatch_planted_problems() -> None:
    t = truth("serving-mismatch")
    cfg, serve, reg = (
        adapter_config("serving-mismatch"),
        vllm_config("serving-mismatch"),
        registry_entry("serving-mismatch"),
    )
    assert cfg["r"] == 32 > serve["max-lora-rank"] == 16
    assert serve["model"] != cfg["base_model_name_or_path"] == BASE_NAME
    actual = sha256(ROLLOUTS / "serving-mismatch" / "adapter" / "adapter_model.safetensors")
    assert reg["sha256"] != actual and reg["sha256"] == t["planted"]["registry_sha256"]
    assert reg["sha256"] == sha256(ROLLOUTS / "serving-mismatch" / t["planted"]["registry_sha256_source"])
    assert t["first_non_finite_step"] is None and sum(t["eval"]["accuracy_delta"].values()) > 0


def test_corrupt_artifacts_are_damaged() -> None:
    from safetensors import safe_open

    t, rollout = truth("corrupt"), ROLLOUTS / "corrupt"
    weights = rollout / "adapter" / "adapter_model.safetensors"
    assert weights.stat().st_size == t["planted"]["adapter_truncated_to"]
    # safetensors raises its own error types on a truncated file
    with pytest.raises(Exception), safe_open(str(weights), framework="numpy") as fh:  # noqa: B017
        [fh.get_tensor(k) for k in fh.keys()]  # noqa: SIM118 - safe_open handles have no __iter__
    cfg = adapter_config("corrupt")
    assert "r" not in cfg and "target_modules" not in cfg and cfg["peft_type"] == "LORA"
    with pytest.raises(json.JSONDecodeError):
        json.loads((rollout / "train" / "trainer_state.json").read_text())
    assert registry_entry("corrupt")["sha256"] != sha256(weights)
    assert list(rollout.glob("train/checkpoint-*/optimizer.pt")), "corrupt keeps the pickles (never loaded)"


@pytest.mark.parametrize("name", SCENARIOS)
def test_manifest_matches_the_run(name: str) -> None:
    from doctor.core.manifest import read_manifest

    manifest = read_manifest(ROLLOUTS / name / "rollout.toml")
    args = json.loads((ROLLOUTS / name / "train" / "training_args.json").read_text())
    for key in ("learning_rate", "max_steps", "per_device_train_batch_size", "max_grad_norm", "seed"):
        assert manifest["recipe"][key] == args[key], key
    for key in ("r", "lora_alpha"):
        if key in adapter_config(name):
            assert manifest["recipe"]["lora"][key] == adapter_config(name)[key]
    assert (ROLLOUTS / name / manifest["adapters"][0]["path"] / "adapter_config.json").exists()
    assert not list((ROLLOUTS / name).rglob("training_args.bin")) or name == "corrupt"


@pytest.mark.slow
def test_build_check_reproduces_healthy() -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "build.py"), "--check"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# ---------------------------------------------------------------- `doctor check` finds exactly what was planted

# Error-level symptoms a scenario's story implies beyond its listed `symptoms` (consequences, not extra
# problems). Anything else at error level is an unplanted problem: the fixture (or a detector) is wrong.
IMPLIED: dict[str, set[str]] = {
    "healthy": set(),
    # lr 1.0 leaves NaN adapter weights; the candidate then fails every slice and loses the refusal
    "diverged": {"adapter_non_finite", "slice_regression", "safety_regression"},
    # the diverged QLoRA adapter generates garbage: every slice and the refusal behaviour regress
    "qlora-unstable": {"slice_regression", "safety_regression"},
    "slice-regression": set(),
    "serving-mismatch": set(),
    # the planted damage itself: trainer_state.json cut mid-write is unreadable input (DOC001), and an
    # adapter_config.json without r/target_modules cannot be loaded by the server (SRV014 says
    # runtime_incompatible). The salvaged half of the log is a healthy run: no TRN finding is allowed.
    "corrupt": {"input_unreadable", "runtime_incompatible"},
}


def doctor_findings(name: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", str(ROLLOUTS / name), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout)["findings"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_doctor_check_finds_exactly_the_planted_problems(name: str) -> None:
    findings = doctor_findings(name)
    t = truth(name)
    listed = set(t["symptoms"])
    found = {s for f in findings for s in f["symptoms"]}
    # every labelled symptom is reported (at any severity: qlora-unstable's grad_explosion is carried
    # only by CFG007 "clipping off", TRN004 does not see its gradual grad-norm growth). A label equal to
    # the cause is the diagnosis itself (serving-mismatch's runtime_incompatible: its findings carry
    # rank_exceeds_limit / base_mismatch / version_drift); `doctor triage` concluding it is
    # tests/test_triage_demo.py's job.
    wanted = listed - {t["cause"]}
    assert wanted <= found, f"missed {sorted(wanted - found)}"
    if name == "healthy":
        loud = [(f["rule"], f["message"]) for f in findings if f["severity"] in ("error", "warning")]
        assert not loud, loud
    errors = [f for f in findings if f["severity"] == "error"]
    spurious = [
        (f["rule"], f["symptoms"], f["message"][:160])
        for f in errors
        if not set(f["symptoms"]) <= listed | IMPLIED[name]
    ]
    assert not spurious, f"unplanted error findings in {name}: {spurious}"
