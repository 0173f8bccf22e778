"""Every log reader on real files (written by the real libraries where one is installed), and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probes.training.readers import read_log
from tests.test_training_helpers import healthy_curve, rules_of, run, write_state


def _one(path, **kw):
    [(_p, s)] = read_log(path, **kw)
    return s


def test_trainer_state_lenient_nan_and_newest_checkpoint(tmp_path):
    t, loss, gn, lr = healthy_curve(n=60)
    gn[30] = np.inf
    write_state(tmp_path / "checkpoint-20" / "trainer_state.json", t[:20], loss[:20], gn[:20], lr[:20])
    write_state(tmp_path / "checkpoint-60" / "trainer_state.json", t, loss, gn, lr)
    s = _one(tmp_path / "checkpoint-60" / "trainer_state.json")
    assert len(s) == 60 and np.isinf(s.grad_norm[30]) and s.has_grad_norm.all()
    rep = run(tmp_path)  # both checkpoints discovered; only the newest is analysed
    assert [f.path.parent.name for f in rep.findings if f.rule == "TRN001"] == ["checkpoint-60"]


def test_llamafactory_jsonl(tmp_path):
    p = tmp_path / "trainer_log.jsonl"
    lines = [
        {"current_steps": i, "total_steps": 50, "loss": 2 - i * 0.01, "lr": 1e-4, "epoch": i / 50, "percentage": i * 2}
        for i in range(1, 51)
    ]
    lines.insert(25, {"current_steps": 25, "total_steps": 50, "eval_loss": 1.5})
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    s = _one(p)
    assert s.format == "llamafactory_trainer_log" and len(s) == 50 and not s.has_grad_norm.any()
    assert s.learning_rate[0] == 1e-4 and "eval_loss" in s.evals and s.meta["max_steps"] == 50


def test_axolotl_keys(tmp_path):
    t, loss, gn, lr = healthy_curve(n=30)
    p = write_state(tmp_path / "trainer_state.json", t, loss, gn, lr)
    st = json.loads(p.read_text())
    for e in st["log_history"]:
        e.update({"ppl": 3.0, "memory/max_mem_active(gib)": 1.2, "tokens/train_per_sec_per_gpu": 100.0})
    p.write_text(json.dumps(st))
    assert _one(p).format == "axolotl_trainer_state"


def test_tfevents_written_by_tensorboard(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(tmp_path))
    t, loss, gn, lr = healthy_curve(n=80)
    loss[50] = float("nan")
    for i in range(80):
        vals = [
            summary_pb2.Summary.Value(tag=k, simple_value=float(v))
            for k, v in (("train/loss", loss[i]), ("train/grad_norm", gn[i]), ("train/learning_rate", lr[i]))
        ]
        w.add_event(event_pb2.Event(step=int(t[i]), wall_time=1.0, summary=summary_pb2.Summary(value=vals)))
    w.add_event(
        event_pb2.Event(
            step=40,
            wall_time=1.0,
            summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="eval/loss", simple_value=1.1)]),
        )
    )
    w.close()
    ev = next(tmp_path.glob("events.out.tfevents*"))
    s = _one(ev)
    assert len(s) == 80 and np.isnan(s.loss[50]) and s.evals["eval_loss"][1][0] == pytest.approx(1.1)
    assert any(f.rule == "TRN001" and f.locator == "step 51" for f in run(ev).findings)


def test_mlflow_file_store(tmp_path):
    """Layout exactly as MLflow's FileStore writes it (mlflow-skinny's file store is used when it can)."""
    run_dir = tmp_path / "mlruns" / "0" / "abc123"
    (run_dir / "metrics").mkdir(parents=True)
    (run_dir / "params").mkdir()
    (run_dir / "tags").mkdir()
    (run_dir / "meta.yaml").write_text("run_id: abc123\n")
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\n")
    _t, loss, gn, lr = healthy_curve(n=40)
    loss[30] = float("nan")
    for name, arr in (("loss", loss), ("grad_norm", gn), ("learning_rate", lr)):
        (run_dir / "metrics" / name).write_text(
            "".join(f"{1700000000000 + i} {v} {i + 1}\n" for i, v in enumerate(arr))
        )
    (run_dir / "params" / "learning_rate").write_text("0.0002")
    (run_dir / "tags" / "mlflow.runName").write_text("demo")
    [(p, s)] = read_log(tmp_path / "mlruns")
    assert p == run_dir and len(s) == 40 and s.meta["run_name"] == "demo"
    assert any(f.rule == "TRN001" and "step 31" in f.message for f in run(tmp_path / "mlruns").findings)


def test_wandb_offline_output_log(tmp_path):
    run_dir = tmp_path / "wandb" / "offline-run-20250101_000000-abc"
    (run_dir / "files").mkdir(parents=True)
    (run_dir / "run-abc.wandb").write_bytes(b"\x00binary")
    (run_dir / "files" / "config.yaml").write_text("logging_steps:\n  value: 5\n")
    lines = [
        f"{{'loss': {2 - i * 0.01}, 'grad_norm': 0.5, 'learning_rate': 0.0002, 'epoch': {i / 40}}}" for i in range(40)
    ]
    lines[30] = "{'loss': 0.0, 'grad_norm': nan, 'learning_rate': 0.0002, 'epoch': 0.75}"
    (run_dir / "files" / "output.log").write_text("\n".join(lines) + "\n")
    (run_dir / "files" / "wandb-summary.json").write_text('{"train/loss": 0.0}')
    s = _one(run_dir)
    assert len(s) == 40 and s.steps[1] == 10 and s.meta["history_binary_not_read"] == ["run-abc.wandb"]
    f = next(f for f in run(tmp_path).findings if f.rule == "TRN001")
    assert f.evidence["masked"] and f.locator == "step 155"


def test_generic_csv_with_configured_columns(tmp_path):
    from doctor.core.settings import parse_settings

    p = tmp_path / "metrics.csv"
    rows = ["step,train_loss,gnorm,lr"] + [f"{i},{2 - i * 0.01},{0.5},{1e-4}" for i in range(1, 41)]
    rows[20] = "20,nan,0.5,1e-4"
    p.write_text("\n".join(rows) + "\n")
    settings = parse_settings(
        {"training": {"columns": {"loss": "train_loss", "grad_norm": "gnorm", "learning_rate": "lr"}}}
    )
    rep = run(p, settings)
    assert any(f.rule == "TRN001" and f.locator == "step 20" for f in rep.findings)


# ---- bad input: a clear finding, no traceback, the readable part still analysed ----


def test_truncated_trainer_state_salvaged(tmp_path):
    t, loss, gn, lr = healthy_curve(n=100)
    loss[40] = float("nan")
    p = write_state(tmp_path / "trainer_state.json", t, loss, gn, lr)
    text = p.read_text()
    p.write_text(text[: int(len(text) * 0.6)])
    rep = run(p)
    doc = next(f for f in rep.findings if f.rule == "DOC001")
    assert "line" in doc.locator and "salvaged" in doc.message
    assert any(f.rule == "TRN001" and f.locator == "step 41" for f in rep.findings)
    assert "DOC002" not in rules_of(rep)


def test_garbage_lines_strings_and_order(tmp_path):
    p = tmp_path / "trainer_log.jsonl"
    lines = [json.dumps({"current_steps": i, "loss": 2 - i * 0.01, "lr": 1e-4}) for i in range(1, 41)]
    lines.insert(10, "Traceback (most recent call last): garbage")
    lines.insert(20, json.dumps({"current_steps": 5, "loss": 1.9, "lr": 1e-4}))
    lines.insert(25, json.dumps({"current_steps": -3, "loss": 1.9, "lr": 1e-4}))
    lines.insert(30, json.dumps({"current_steps": 33, "loss": "oops", "lr": 1e-4}))
    p.write_text("\n".join(lines) + "\n" + '{"current_steps": 41, "loss"')
    rep = run(p)
    got = rules_of(rep)
    assert {"TRN010", "TRN011"} <= got and "DOC002" not in got
    msgs = " ".join(f.message for f in rep.findings)
    assert "not JSON" in msgs and "not a number" in msgs and "negative" in msgs and "incomplete" in msgs


def test_empty_and_huge_line(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "trainer_state.json").write_bytes(b"")
    rep = run(tmp_path / "a")
    assert any(f.rule == "DOC001" and "empty" in f.message for f in rep.findings)
    p = tmp_path / "b" / "trainer_log.jsonl"
    p.parent.mkdir()
    good = [json.dumps({"current_steps": i, "loss": 1.0 - i * 0.001}) for i in range(1, 30)]
    p.write_text(good[0] + "\n" + '{"x": "' + "A" * (9 * 1024 * 1024) + '"}\n' + "\n".join(good[1:]) + "\n")
    rep = run(p)
    assert any(f.rule == "TRN010" and "MB long" in f.message for f in rep.findings)
    assert rep.artifacts[0].facts["points"] == 29
