"""training_args.bin read without executing it: a real TrainingArguments + torch.save reaches the config
rules; payloads that would run code are reported (CFG008) and run nothing; damaged files and plain Trainer
output folders (checkpoint-N/ only, no manifest) get clear findings. Imports torch + transformers once."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from doctor.core.settings import Settings
from doctor.engine import check
from probes.training.readers.trainingargs import (
    TrainingArgsError,
    UnsafePickleError,
    read_training_args,
    scan_training_args,
)
from tests.test_training_helpers import healthy_curve, write_state

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _args(tmp: Path, **kw):
    base = dict(output_dir=str(tmp / "out"), report_to=[], use_cpu=True)
    return transformers.TrainingArguments(**{**base, **kw})


@pytest.fixture(scope="module")
def qlora_fp16_bin(tmp_path_factory) -> Path:
    """An fp16 QLoRA-style recipe at lr 3e-3, no clipping, no warmup: as Trainer writes it."""
    tmp = tmp_path_factory.mktemp("ta")
    args = _args(tmp, learning_rate=3e-3, fp16=True, max_grad_norm=0.0, warmup_steps=0, lr_scheduler_type="cosine")
    path = tmp / "training_args.bin"
    torch.save(args, path)
    return path


def test_fields_are_recovered_as_plain_values(qlora_fp16_bin):
    fields = read_training_args(qlora_fp16_bin)
    assert fields["learning_rate"] == 3e-3 and fields["fp16"] is True and fields["max_grad_norm"] == 0.0
    assert fields["lr_scheduler_type"] == "cosine"  # the enum's value, as TrainingArguments.to_dict() writes it
    assert fields["optim"].startswith("adamw") and fields["output_dir"].endswith("out")
    json.dumps(fields)  # plain data all the way down
    assert zipfile.is_zipfile(qlora_fp16_bin) and scan_training_args(qlora_fp16_bin).layout == "zip"


def test_legacy_torch_save_layout(tmp_path):
    path = tmp_path / "training_args.bin"
    torch.save(_args(tmp_path, learning_rate=5e-5), path, _use_new_zipfile_serialization=False)
    scan = scan_training_args(path)
    assert scan.layout == "stream" and scan.fields["learning_rate"] == 5e-5
    assert scan.class_name == "transformers.training_args.TrainingArguments"


ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "base_model_name_or_path": "tiny-base",
    "r": 8,
    "lora_alpha": 16,
    "target_modules": ["q_proj", "v_proj"],
}


def _lora_weights() -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for layer in range(2):
        for mod in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            out[f"{key}.lora_A.weight"] = rng.normal(0, 0.02, (8, 32)).astype(np.float32)
            out[f"{key}.lora_B.weight"] = rng.normal(0, 0.01, (32, 8)).astype(np.float32)
    return out


def _trainer_folder(root: Path, args_bin: Path | None, steps=(10, 20)) -> Path:
    """A plain HF Trainer / PEFT output folder: checkpoint-N/ only, no manifest, no top-level files."""
    t, loss, gn, lr = healthy_curve(n=max(steps))
    for n in steps:
        ck = root / f"checkpoint-{n}"
        write_state(ck / "trainer_state.json", t[:n], loss[:n], gn[:n], lr[:n])
        (ck / "adapter_config.json").write_text(json.dumps(ADAPTER_CONFIG))
        save_file(_lora_weights(), str(ck / "adapter_model.safetensors"))
        if args_bin is not None:
            (ck / "training_args.bin").write_bytes(args_bin.read_bytes())
    return root


@pytest.mark.parametrize("target", ["run", "parent", "checkpoint"])
def test_plain_trainer_folder_gets_its_cfg_findings(tmp_path, qlora_fp16_bin, target):
    run = _trainer_folder(tmp_path / "parent" / "run", qlora_fp16_bin)
    path = {"run": run, "parent": tmp_path / "parent", "checkpoint": run / "checkpoint-20"}[target]
    rep = check([path], Settings())
    cfg = [f for f in rep.findings if f.rule.startswith("CFG")]
    by_rule = {f.rule: f for f in cfg}
    assert sorted(f.rule for f in cfg) == ["CFG001", "CFG002", "CFG003", "CFG007"], [f.message for f in cfg]
    assert "3e-03" in by_rule["CFG001"].message or "0.003" in by_rule["CFG001"].message
    assert str(by_rule["CFG001"].path).endswith("checkpoint-20/training_args.bin")  # the newest checkpoint's
    assert "max_grad_norm=0.0" in by_rule["CFG007"].message
    logs = [a for a in rep.artifacts if a.kind == "training_log"]
    assert [Path(a.path).parent.name for a in logs] == ["checkpoint-20"]
    assert not [f for f in rep.findings if f.rule in ("DOC004", "CFG008", "CFG009")]


class _Payload:
    """Unpickling this calls os.system / exec to create a marker file."""

    def __init__(self, how: str, marker: Path) -> None:
        self.how, self.marker = how, marker

    def __reduce__(self):
        if self.how == "exec":
            return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))
        return (os.system, (f"touch {self.marker}",))


def _write_payload(kind: str, path: Path, marker: Path, tmp: Path) -> None:
    if kind == "torch.save":
        torch.save(_Payload("system", marker), path)
    elif kind == "legacy":
        torch.save(_Payload("exec", marker), path, _use_new_zipfile_serialization=False)
    elif kind == "field":  # a genuine TrainingArguments carrying a payload in one field
        args = _args(tmp, learning_rate=2e-4)
        args.report_to = [_Payload("exec", marker)]
        torch.save(args, path)
    elif kind == "pickle4":
        path.write_bytes(pickle.dumps(_Payload("system", marker), protocol=4))
    elif kind == "protocol0":  # INST opcode, no REDUCE
        path.write_bytes(f"(S'touch {marker}'\nios\nsystem\n.".encode())


@pytest.mark.parametrize("kind", ["torch.save", "legacy", "field", "pickle4", "protocol0"])
def test_payload_is_a_finding_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run" / "checkpoint-5"
    run.mkdir(parents=True)
    _write_payload(kind, run / "training_args.bin", marker, tmp_path)
    write_state(run / "trainer_state.json", *healthy_curve(n=5))
    rep = check([tmp_path / "run"], Settings())
    [f] = [f for f in rep.findings if f.rule == "CFG008"]
    assert f.severity.value == "error" and rep.exit_code == 1
    assert ("system(" in f.message and "touch" in f.message) or "exec(" in f.message, f.message
    assert "nothing was run" in f.message
    with pytest.raises(UnsafePickleError) as exc:
        read_training_args(run / "training_args.bin")
    assert exc.value.calls
    assert not marker.exists()
    # the config rules could not run on it: said as such
    [info] = [f for f in rep.findings if f.rule == "CFG009"]
    assert "would run code" in info.message and "CFG001" in info.message


def test_unknown_call_is_a_warning_not_loaded(tmp_path):
    # a call of some other module's function (not known-dangerous, not what TrainingArguments pickles)
    (tmp_path / "training_args.bin").write_bytes(b"\x80\x02cmypkg.helpers\nbuild\nq\x00X\x01\x00\x00\x00xq\x01\x85R.")
    write_state(tmp_path / "trainer_state.json", *healthy_curve(n=30))
    rep = check([tmp_path], Settings())
    [f] = [f for f in rep.findings if f.rule == "CFG008"]
    assert f.severity.value == "warning" and "mypkg.helpers.build('x')" in f.message


def test_damaged_and_oversized_files_are_reported_not_loaded(tmp_path, qlora_fp16_bin):
    whole = qlora_fp16_bin.read_bytes()
    (tmp_path / "training_args.bin").write_bytes(whole[: len(whole) // 2])
    rep = check([tmp_path / "training_args.bin"], Settings())
    [f] = [f for f in rep.findings if f.rule == "DOC004"]
    assert "could not be read safely" in f.message and "zip" in f.message
    with pytest.raises(TrainingArgsError):
        read_training_args(tmp_path / "training_args.bin")
    # memo references make a few hundred bytes expand exponentially: the node cap stops it
    bomb: list = []
    for _ in range(24):  # 2**24 leaves from 24 memo entries
        bomb = [bomb, bomb]
    args = _args(tmp_path, learning_rate=1e-4)
    args.report_to = bomb
    torch.save(args, tmp_path / "bomb.bin")
    assert "more than" in scan_training_args(tmp_path / "bomb.bin").problem
    deep: list = []
    for _ in range(100):
        deep = [deep]
    args.report_to = deep
    torch.save(args, tmp_path / "deep.bin")
    assert "nested deeper" in scan_training_args(tmp_path / "deep.bin").problem


def test_log_without_recipe_says_which_config_rules_did_not_run(tmp_path):
    _trainer_folder(tmp_path / "run", None)  # checkpoints without training_args.bin
    rep = check([tmp_path / "run"], Settings())
    [f] = [f for f in rep.findings if f.rule == "CFG009"]
    assert f.severity.value == "info" and "CFG001" in f.message and "CFG007" in f.message
    assert "no training_args.json, training_args.bin" in f.message
    assert rep.exit_code == 0
    # a lone log file checked on its own: no config was to be expected, nothing said
    write_state(tmp_path / "solo" / "trainer_state.json", *healthy_curve(n=60))
    assert not [f for f in check([tmp_path / "solo"], Settings()).findings if f.rule == "CFG009"]


def test_mutated_pickles_never_raise_or_run(tmp_path):
    """Random damage to a real TrainingArguments pickle, with and without a payload in front: a scan result
    every time (fields, a problem, or code it would run), never an exception, never a side effect."""
    import random

    good = pickle.dumps(_args(tmp_path, learning_rate=1e-4), protocol=2)
    marker = tmp_path / "PWNED"
    evil = f"(S'touch {marker}'\nios\nsystem\n".encode()
    rnd = random.Random(14)
    path = tmp_path / "training_args.bin"
    outcomes = set()
    for case in range(400):
        data = bytearray(good)
        for _ in range(rnd.randint(0, 8)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        blob = (evil if case % 4 == 0 else b"") + bytes(data) + rnd.randbytes(rnd.randint(0, 32))
        path.write_bytes(blob)
        scan = scan_training_args(path)
        assert scan.fields or scan.problem, case
        if case % 4 == 0:
            assert scan.dangerous and "os.system" in scan.problem, (case, scan.problem)
        outcomes.add("fields" if scan.fields else "unsafe" if scan.unsafe else "problem")
        assert not marker.exists()
    assert outcomes == {"fields", "unsafe", "problem"}
