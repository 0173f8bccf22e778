"""The fix loop with real jobs on CPU (slow: real Trainer + peft runs on the tiny model, kept small).

- a fix made to fail (the learning rate kept far too high) ends `not_fixed`, exit 1, registry `rejected`,
  the other registry entries and their rollback_to untouched;
- a plain HF Trainer output folder produced here (transformers + peft), made a rollout by `doctor init`,
  then `doctor fix` ends with a verdict that its exit code, fix log and registry agree with.
Every test works on copies in tmp_path; eval sets are cut to a few examples per slice to stay fast.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.jobs.verdict import VERDICTS
from probes.registry.store import load
from tests.conftest import FIXTURES, ROLLOUTS, run_doctor

pytestmark = pytest.mark.slow


def _small_world(tmp_path: Path, name: str, per_slice: int) -> Path:
    """fixtures/{models,data} + one rollout, with the eval set (and the rollout's tables) cut to the
    first `per_slice` examples of each slice — the same ids in every table, so pairing still holds."""
    dst = tmp_path / "fixtures"
    shutil.copytree(FIXTURES / "models", dst / "models")
    (dst / "data").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "data" / "train.jsonl", dst / "data" / "train.jsonl")
    keep, count = [], {}
    for line in (FIXTURES / "data" / "eval.jsonl").read_text().splitlines():
        row = json.loads(line)
        if count.get(row["slice"], 0) < per_slice:
            count[row["slice"]] = count.get(row["slice"], 0) + 1
            keep.append(row)
    (dst / "data" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    ids = {r["id"] for r in keep}
    root = dst / "rollouts" / name
    shutil.copytree(ROLLOUTS / name, root, ignore=shutil.ignore_patterns(".doctor"))
    for table in (root / "eval").glob("*.csv"):
        with table.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        with table.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(r for r in rows if r["id"] in ids)
    return root


def test_a_fix_made_to_fail_is_not_fixed_rejected_and_exits_1(tmp_path):
    root = _small_world(tmp_path, "diverged", per_slice=30)
    registry_before = load(root / "registry.yaml").entries
    proc = run_doctor(
        "jobs", "run", "--from-triage", str(root), "--format", "json",
        "--override", "learning_rate=1.0", "--override", "max_grad_norm=0",  # the fix keeps the bad rate
        "--override", "max_steps=12", "--override", "per_device_train_batch_size=8",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    job = json.loads(proc.stdout)
    assert job["state"] == "succeeded" and job["verdict"] == "not_fixed", job["verdict_detail"]
    detail = job["verdict_detail"]
    assert "CFG001" in detail["remaining"]  # the learning rate is still far above the LoRA range
    assert any(s["status"] == "regression" for s in detail["slices_vs_baseline"])
    entry = job["outputs"]["registry"]["entry"]
    assert entry["status"] == "rejected" and entry["gate"] == "failed" and entry["rollback_to"] is None
    registry_after = load(root / "registry.yaml").entries
    assert registry_after[: len(registry_before)] == registry_before  # v1 and its rollback_to unchanged
    show = run_doctor("jobs", "show", job["id"], "--rollout", str(root))
    assert "verdict: NOT FIXED" in show.stdout and "paired vs baseline" in show.stdout
    assert 'registry v2 is "rejected"' in show.stdout


TRAIN_SCRIPT = r"""
import json, sys
from pathlib import Path
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

base, data, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
tok = AutoTokenizer.from_pretrained(base)
rows = [json.loads(l) for l in data.read_text().splitlines()[:32]]
enc = [tok("### Instruction:\n" + r["prompt"] + "\n### Response:\n" + r["response"] + tok.eos_token,
           truncation=True, max_length=48, padding="max_length") for r in rows]
ds = Dataset.from_list([{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"],
                         "labels": e["input_ids"]} for e in enc])
model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                       LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
args = TrainingArguments(output_dir=str(out), max_steps=6, per_device_train_batch_size=4, learning_rate=5.0,
                         max_grad_norm=1.0, logging_steps=1, save_strategy="steps", save_steps=6,
                         report_to=[], use_cpu=True, seed=0)
trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
trainer.train()
trainer.save_model(str(out))  # the final adapter at the top, as most recipes do
"""


def test_init_on_a_real_trainer_output_then_fix_ends_with_a_verdict(tmp_path):
    root = _small_world(tmp_path, "healthy", per_slice=4)
    data = root.parent.parent / "data"
    out = tmp_path / "my-run"
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    subprocess.run(
        [sys.executable, str(script), str(data.parent / "models" / "tiny-base"), str(data / "train.jsonl"), str(out)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert (out / "training_args.bin").is_file() and (out / "checkpoint-6" / "trainer_state.json").is_file()
    init = run_doctor(
        "init", str(out), "--base-model", str(data.parent / "models" / "tiny-base"),
        "--train-data", str(data / "train.jsonl"), "--eval-set", str(data / "eval.jsonl"), "--no-input",
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    assert "training_args.bin: recipe (read without unpickling code)" in init.stdout
    fix = run_doctor("fix", str(out), "--attempts", "1", "--format", "json")
    assert fix.returncode in (0, 1), fix.stderr[-2000:]
    report = json.loads(fix.stdout)
    assert report["schema"] == "peft-doctor/fix/1" and report["verdict"] in VERDICTS
    assert (fix.returncode == 0) == (report["verdict"] == "fixed")
    (attempt,) = report["attempts"]
    assert attempt["version"] == 2 and attempt["changes"]["learning_rate"][0] == 5.0
    assert attempt["changes"]["learning_rate"][1] <= 2e-4  # bounded to the LoRA range
    log = [json.loads(x) for x in (out / ".doctor" / "fix-log.jsonl").read_text().splitlines()]
    assert log[-1]["job"] == attempt["job"] and log[-1]["verdict"] == attempt["verdict"]
    entry = load(out / "registry.yaml").get(out.name, 2)
    assert entry["status"] == ("canary" if report["verdict"] == "fixed" else "rejected")


def test_retrain_with_the_rollouts_own_trl_cli_command(tmp_path):
    """The rollout trains with `trl sft --config sft.yaml`; the job runs that command on a copy of the
    config with the corrective changes, then re-probes and judges its outputs like any retrain."""
    trl = Path(sys.executable).parent / "trl"
    if not trl.exists():
        pytest.skip("trl is not installed (pip install trl: the train extra)")
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    rows = [json.loads(x) for x in (FIXTURES / "data" / "train.jsonl").read_text().splitlines()[:64]]
    (proj / "data" / "train.jsonl").write_text(
        "".join(
            json.dumps({"prompt": f"### Instruction:\n{r['prompt']}\n### Response:\n", "completion": r["response"]})
            + "\n"
            for r in rows
        )
    )
    evals, count = [], {}
    for line in (FIXTURES / "data" / "eval.jsonl").read_text().splitlines():
        r = json.loads(line)
        if count.setdefault(r["slice"], 0) < 4:
            count[r["slice"]] += 1
            evals.append(line)
    (proj / "eval.jsonl").write_text("\n".join(evals) + "\n")
    base = FIXTURES / "models" / "tiny-base"
    config = (
        "# my TRL SFT recipe\n"
        f"model_name_or_path: {base}\ndataset_name: data\noutput_dir: out\n"
        "learning_rate: 5.0\nmax_grad_norm: 1.0\nmax_steps: 4\nper_device_train_batch_size: 4\nlogging_steps: 1\n"
        "use_peft: true\nlora_r: 4\nlora_alpha: 8\nlora_target_modules: [q_proj, v_proj]\n"
        "report_to: none\nuse_cpu: true\nmax_length: 48\nsave_strategy: steps\nsave_steps: 4\n"
    )
    (proj / "sft.yaml").write_text(config)
    # The run being fixed: its log as TRL's SFTTrainer writes it (the retrain below runs trl for real).
    hist = [
        {
            "step": i,
            "epoch": i / 16,
            "loss": 3.0 + i,
            "grad_norm": 10.0**i,
            "learning_rate": 5.0,
            "mean_token_accuracy": 0.1,
        }
        for i in range(1, 5)
    ]
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", proj / "out")  # the adapter it saved (a stand-in)
    (proj / "out" / "trainer_state.json").write_text(
        json.dumps({"global_step": 4, "max_steps": 4, "log_history": hist})
    )
    (proj / "rollout.toml").write_text(
        'adapters = [{ name = "sft-bot", version = 1, path = "out" }]\n'
        f'[rollout]\nname = "trl-run"\nmethod = "lora"\nbase_model = "{base}"\n'
        '[data]\ntrain = "data/train.jsonl"\n[eval]\neval_set = "eval.jsonl"\n'
        '[training]\nlog_dir = "out"\ncommand = ["trl", "sft", "--config", "sft.yaml"]\n'
        "[recipe]\nlearning_rate = 5.0\nmax_grad_norm = 1.0\nmax_steps = 4\nper_device_train_batch_size = 4\n"
    )
    from doctor.jobs.api import spec_from_action

    spec = spec_from_action(proj, {"kind": "retrain", "overrides": {"learning_rate": "x0.5", "max_grad_norm": 0.3}})
    assert spec["trainer"]["command"][:2] == ["trl", "sft"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = run_doctor("jobs", "run", str(tmp_path / "spec.json"), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    job = json.loads(proc.stdout)
    assert job["state"] == "succeeded" and job["verdict"] in VERDICTS, job.get("error")
    assert (proc.returncode == 0) == (job["verdict"] == "fixed")
    copy = Path(job["outputs"]["out_dir"]) / "trainer-config.yaml"
    import yaml

    applied = yaml.safe_load(copy.read_text())
    assert applied["learning_rate"] == pytest.approx(2e-4) and applied["max_grad_norm"] == 0.3
    assert applied["dataset_name"] == "data" and applied["output_dir"].endswith("/out/train")
    assert (proj / "sft.yaml").read_text() == config  # the user's config is never touched
    assert (proj / "adapters" / "sft-bot-v2" / "adapter_config.json").is_file()
    assert job["comparison"]["training"]["global_step"] == 4
    logs = run_doctor("jobs", "logs", job["id"], "--rollout", str(proj))
    assert "training with the rollout's own command" in logs.stdout and "sft" in logs.stdout
