"""Job spec validation: bad specs fail with a clear message before anything starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from doctor.jobs.spec import SpecError, load_spec, spec_from_action, validate_spec
from tests.conftest import ROLLOUTS

MANIFEST = """
[rollout]
name = "toy"
method = "lora"
base_model = "model"
base_model_name = "peft-doctor/tiny-base"

[[adapters]]
name = "support-bot"
version = 1
path = "adapter"

[data]
train = "train.jsonl"
train_slices = ["arithmetic"]

[eval]
eval_set = "eval.jsonl"
baseline = "eval/baseline.csv"
candidates = ["eval/candidate.csv"]

[recipe]
learning_rate = 1.0
max_steps = 60
max_grad_norm = 0.0
per_device_train_batch_size = 16

[recipe.lora]
r = 8
lora_alpha = 16
target_modules = ["q_proj", "v_proj"]
"""


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}))
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text("{}")
    row = {"id": "a1", "slice": "arithmetic", "prompt": "What is 1 + 1?", "response": "2", "scorer": "exact"}
    (root / "train.jsonl").write_text(json.dumps(row) + "\n")
    (root / "eval.jsonl").write_text(json.dumps(row) + "\n")
    (root / "rollout.toml").write_text(MANIFEST)
    return root


def _retrain(root: Path, **changes) -> dict:
    spec = {
        "kind": "retrain",
        "rollout": str(root),
        "method": "lora",
        "base_model": str(root / "model"),
        "recipe": {"learning_rate": 1e-3, "max_steps": 5, "lora": {"r": 4}},
        "data": {"train": str(root / "train.jsonl")},
    }
    spec.update(changes)
    return spec


def test_valid_retrain_is_normalized(toy):
    s = validate_spec(_retrain(toy))
    assert s["schema"] == "peft-doctor/job/1"
    assert s["data"]["train_slices"] == "all"
    assert s["device"] == "auto" and s["num_processes"] == 1 and s["adapter_name"] == "adapter"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "dora"}, "method 'dora': expected lora or qlora"),
        ({"base_model": None}, "missing base_model"),
        ({"kind": "finetune"}, "kind 'finetune'"),
        ({"overrides": {"learning_rat": "x0.5"}}, "unknown recipe field 'learning_rat'"),
        ({"overrides": {"lora.alpha": 8}}, "unknown recipe field 'lora.alpha'"),
        ({"overrides": {"learning_rate": "x-y"}}, "not a multiplier"),
        ({"method": "qlora"}, "method qlora needs recipe.quantization"),
        ({"bogus": 1}, "unknown retrain spec field(s) bogus"),
        ({"data": {}}, "data.train"),
        ({"data": {"train": "nope.jsonl"}}, "no such file"),
        ({"device": "tpu"}, "device 'tpu'"),
        ({"recipe": "lr=1"}, "recipe: expected"),
    ],
)
def test_bad_retrain_specs(toy, changes, message):
    with pytest.raises(SpecError) as err:
        validate_spec(_retrain(toy, **changes))
    assert message in str(err.value)


def test_qlora_spec_checks_quant_fields(toy):
    recipe = {"max_steps": 2, "quantization": {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float8"}}
    with pytest.raises(SpecError, match="bnb_4bit_compute_dtype 'float8'"):
        validate_spec(_retrain(toy, method="qlora", recipe=recipe))
    recipe["quantization"]["bnb_4bit_compute_dtype"] = "bfloat16"
    assert validate_spec(_retrain(toy, method="qlora", recipe=recipe))["method"] == "qlora"


def test_reeval_specs(toy):
    base = {
        "kind": "reeval",
        "rollout": str(toy),
        "base_model": str(toy / "model"),
        "eval_set": str(toy / "eval.jsonl"),
    }
    s = validate_spec(base)
    assert s["variant"] == "base" and s["scorers"] == {}
    with pytest.raises(SpecError, match=r"scorers\.arithmetic = 'fuzzy'"):
        validate_spec({**base, "scorers": {"arithmetic": "fuzzy"}})
    with pytest.raises(SpecError, match="missing eval_set"):
        validate_spec({k: v for k, v in base.items() if k != "eval_set"})
    with pytest.raises(SpecError, match="unknown reeval spec field"):
        validate_spec({**base, "recipe": {}})


def test_spec_file_paths_are_relative_to_the_file(toy):
    spec = _retrain(Path("toy"))
    spec.update(rollout="toy", base_model="toy/model", data={"train": "toy/train.jsonl"})
    path = toy.parent / "job.json"
    path.write_text(json.dumps(spec))
    s = load_spec(path)
    assert s["base_model"] == str((toy / "model").resolve())
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(path)


def test_spec_from_action_applies_overrides_to_the_recorded_recipe(toy):
    s = spec_from_action(toy, {"kind": "retrain", "overrides": {"learning_rate": "x0.1", "max_grad_norm": 1.0}})
    # lr 1.0 x0.1 would be 0.1, still 500x the top of the usual LoRA range: the fix is bounded to that top.
    assert s["recipe"]["learning_rate"] == pytest.approx(2e-4)
    assert s["source"]["changes"]["learning_rate"] == [1.0, pytest.approx(2e-4)]
    assert s["recipe"]["max_grad_norm"] == 1.0 and s["recipe"]["max_steps"] == 60
    assert s["data"]["train_slices"] == ["arithmetic"] and s["adapter_name"] == "support-bot"
    assert s["eval"]["eval_set"] == str((toy / "eval.jsonl").resolve())
    mixed = spec_from_action(toy, {"kind": "job", "job": {"kind": "retrain", "overrides": {"train_slices": "all"}}})
    assert mixed["data"]["train_slices"] == "all"
    with pytest.raises(SpecError, match="unknown recipe field 'nope'"):
        spec_from_action(toy, {"kind": "retrain", "overrides": {"nope": 1}})
    ev = spec_from_action(toy, {"kind": "reeval"})
    assert ev["adapter"] == str((toy / "adapter").resolve()) and ev["variant"] == "lora"


def test_cli_rejects_bad_spec_before_starting(toy, tmp_path):
    from tests.conftest import run_doctor

    bad = _retrain(toy, overrides={"warmup": 3})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    proc = run_doctor("jobs", "run", str(path))
    assert proc.returncode == 2
    assert "unknown recipe field 'warmup'" in proc.stderr
    assert not (toy / ".doctor" / "jobs").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("learning_rate=abc", "learning_rate = 'abc': expected a number > 0"),
        ("max_grad_norm=-1", "max_grad_norm = -1: expected a number >= 0"),
        ("num_train_epochs=-5", "num_train_epochs = -5: expected a number > 0"),
        ("lora.r=0", "lora.r = 0: expected an integer >= 1"),
        ("bf16=maybe", "bf16 = 'maybe': expected true or false"),
    ],
)
def test_bad_override_values_are_refused_before_a_worker_starts(tmp_path, capsys, override, message):
    """--dry-run validates: a value of the wrong type or range exits 2 naming the field (before: exit 0, and a
    real run failed inside the worker with a TypeError)."""
    from doctor.cli import main

    root = tmp_path / "rollouts" / "diverged"
    for part in ("models", "data"):
        (tmp_path / part).symlink_to(ROLLOUTS.parent / part)
    shutil.copytree(ROLLOUTS / "diverged", root, ignore=shutil.ignore_patterns(".doctor"))
    rc = main(["jobs", "run", "--from-triage", str(root), "--override", override, "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (root / ".doctor").exists()


def test_specs_built_from_a_rollout_checkpoint_often_enough_to_resume():
    """A triage/playbook retrain writes at least ten checkpoints per run (the recipe's own when more often)."""
    from doctor.jobs.spec import checkpoint_every

    assert checkpoint_every({"max_steps": 400}) == 40
    assert checkpoint_every({"max_steps": 400, "save_strategy": "steps", "save_steps": 25}) == 25
    assert checkpoint_every({"max_steps": 400, "save_steps": 100}) == 40
    assert checkpoint_every({"max_steps": 5}) == 1 and checkpoint_every({"num_train_epochs": 3}) is None
    spec = spec_from_action(ROLLOUTS / "diverged", {"kind": "retrain"})
    assert spec["save_steps"] == checkpoint_every(spec["recipe"]) and spec["save_steps"] >= 1


def test_hf_step_shares_are_valid_recipe_values():
    """TrainingArguments reads logging/save/eval steps below 1 as a share of the run."""
    from doctor.jobs.spec import checkpoint_every
    from doctor.playbook.recipe import check_values

    check_values({"logging_steps": 0.05, "save_steps": 0.1, "eval_steps": 0.2, "warmup_ratio": 1.0})
    assert checkpoint_every({"max_steps": 400, "save_steps": 0.05}) == 20
