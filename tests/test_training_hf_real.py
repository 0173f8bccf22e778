"""A real (tiny) HF Trainer run writes trainer_state.json, checkpoint-N/ and TensorBoard events; the
readers agree with each other on it. Slow (imports torch + transformers)."""

from __future__ import annotations

import pytest

from probes.training.readers import read_log


@pytest.mark.slow
def test_tiny_trainer_run_is_read_by_every_reader(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    ids = torch.randint(0, 64, (64, 16))
    data = [{"input_ids": x, "labels": x} for x in ids]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=30,
        logging_steps=1,
        save_steps=15,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        report_to=["tensorboard"],
        use_cpu=True,
        save_only_model=True,
    )
    transformers.Trainer(model=model, args=args, train_dataset=data).train()
    state = tmp_path / "checkpoint-30" / "trainer_state.json"
    [(_, s)] = read_log(state)
    assert len(s) == 30 and s.has_grad_norm.all() and s.learning_rate[0] > 0
    ev = next(tmp_path.rglob("events.out.tfevents*"))
    [(_, t)] = read_log(ev)
    assert len(t) == 30
    assert abs(float(t.loss[-1]) - float(s.loss[-1])) < 1e-4
    # the output folder as Trainer left it (checkpoint-N/ only, no manifest): the newest checkpoint's log
    # and its training_args.bin (read without unpickling) stand for the run
    from doctor.core.settings import Settings
    from doctor.engine import check

    rep = check([tmp_path], Settings())
    cfgs = [a for a in rep.artifacts if a.kind == "training_config"]
    assert [a.path.parent.name for a in cfgs] == ["checkpoint-30"]
    assert cfgs[0].facts["recipe"]["learning_rate"] == 1e-3 and cfgs[0].facts["layout"] == "zip"
    logs = [a for a in rep.artifacts if a.kind == "training_log"]
    assert [a.path.parent.name for a in logs if "same_run_as" not in a.facts] == ["checkpoint-30"]
    assert [a.facts["same_run_as"] for a in logs if "same_run_as" in a.facts] == [str(state)]  # tfevents: read once
    assert not [f for f in rep.findings if f.rule in ("DOC004", "CFG008", "CFG009", "DOC002")]
