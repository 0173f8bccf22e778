"""What a user sees around jobs (no training): manifest path errors, finding a job's store, the Next hint,
number formatting, triage answers, and the registry lock file."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from doctor.cli import main
from doctor.jobs import api
from doctor.jobs.spec import SpecError, spec_from_action, spec_from_triage
from probes.registry.store import add_version, load
from tests.conftest import ROLLOUTS
from tests.test_jobs_spec import toy  # noqa: F401 - fixture


def _doctor(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------ 1. manifest paths that point nowhere


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'base_model = "model"',
            'base_model = "../../models/tiny-base"',
            '[rollout] base_model "../../models/tiny-base"',
        ),
        ('train = "train.jsonl"', 'train = "../data/train.jsonl"', '[data] train "../data/train.jsonl"'),
        ('eval_set = "eval.jsonl"', 'eval_set = "../data/eval.jsonl"', '[eval] eval_set "../data/eval.jsonl"'),
    ],
)
def test_copied_rollout_says_where_a_path_came_from(toy, tmp_path, old, new, expected):  # noqa: F811
    dst = tmp_path / "elsewhere" / "x"
    shutil.copytree(toy, dst)
    manifest = dst / "rollout.toml"
    manifest.write_text(manifest.read_text().replace(old, new))
    with pytest.raises(SpecError) as err:
        spec_from_action(dst, {"kind": "retrain"})
    msg = str(err.value)
    assert msg.startswith(f"{dst / 'rollout.toml'}: {expected} resolves to ")
    assert "relative to its folder" in msg and "copy" in msg and "or edit" in msg
    rel = new.split('"')[1]
    assert str((dst / rel).resolve()) in msg


def test_copied_demo_rollout_cli_message(tmp_path, capsys):
    if not (ROLLOUTS / "diverged" / "rollout.toml").is_file():
        pytest.skip("demo world not built (python fixtures/build.py)")
    dst = tmp_path / "x"
    shutil.copytree(ROLLOUTS / "diverged", dst, ignore=shutil.ignore_patterns(".doctor"))
    rc, _, err = _doctor(capsys, "jobs", "run", "--from-triage", str(dst), "--dry-run")
    assert rc == 2
    assert f'doctor: {dst / "rollout.toml"}: [rollout] base_model "../../models/tiny-base" resolves to ' in err
    assert "fixtures/ folder" in err


# ------------------------------------------------------------ 2. finding a job's store


def test_list_takes_a_positional_rollout_and_show_says_what_it_searched(toy, tmp_path, capsys, monkeypatch):  # noqa: F811
    job = api.JobStore(toy).create({"kind": "reeval", "rollout": str(toy)})
    rc, out, _ = _doctor(capsys, "jobs", "list", str(toy))
    assert rc == 0 and job.id in out
    rc, out, _ = _doctor(capsys, "jobs", "list", "--rollout", str(toy))
    assert rc == 0 and job.id in out
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc, _, err = _doctor(capsys, "jobs", "show", job.id)
    assert rc == 2 and "no job store" in err and "--rollout PATH" in err
    monkeypatch.chdir(tmp_path)  # the toy rollout is below: found
    rc, out, _ = _doctor(capsys, "jobs", "show", job.id)
    assert rc == 0 and job.id in out
    rc, out, _ = _doctor(capsys, "jobs", "list")
    assert rc == 0 and job.id in out
    rc, _, err = _doctor(capsys, "jobs", "show", "20990101-nope")
    assert rc == 2 and str(api.JobStore(toy).path) in err and "--rollout PATH" in err
    rc, _, err = _doctor(capsys, "jobs", "list", str(toy), "--rollout", str(elsewhere))
    assert rc == 2 and "differ" in err


# ------------------------------------------------------------ 3 + 4. the Next hint and numbers


def _succeeded_retrain(root: Path) -> api.Job:
    store = api.JobStore(root)
    new = root / "adapters" / "support-bot-v2"
    new.mkdir(parents=True)
    (new / "adapter_config.json").write_text("{}")
    add_version(root / "registry.yaml", {"name": "support-bot", "path": "adapter", "status": "active"})
    entry = add_version(root / "registry.yaml", {"name": "support-bot", "path": "adapters/support-bot-v2"})
    spec = {"kind": "retrain", "rollout": str(root), "method": "lora", "overrides": {"learning_rate": 0.1 + 0.2}}
    job = store.create(spec)
    comparison = {
        "families": ["TRN"],
        "before": {"findings": 2, "rules": [], "accuracy": 0.5},
        "after": {"findings": 0, "rules": [], "accuracy": 0.75},
        "training": {"final_loss": 0.15907132625579834, "first_non_finite_step": None},
    }
    outputs = {"adapter": str(new), "version": 2, "registry": {"path": str(root / "registry.yaml"), "entry": entry}}
    store.set_state(job.id, "succeeded", outputs=outputs, comparison=comparison)
    return store.get(job.id)


def test_show_ends_with_next_steps_and_rounds_numbers(toy, tmp_path, capsys, monkeypatch):  # noqa: F811
    job = _succeeded_retrain(toy)
    monkeypatch.chdir(tmp_path)
    rc, out, _ = _doctor(capsys, "jobs", "show", job.id, "--rollout", str(toy))
    assert rc == 0
    assert "final loss 0.1591" in out and "0.15907" not in out
    assert "learning_rate=0.3" in out and "0.30000000000000004" not in out
    tail = out[out.index("Next:") :]
    assert "Next: doctor check toy/adapters/support-bot-v2" in tail
    assert 'registry v2 is "canary" (rollback_to v1)' in tail and 'mark it "active"' in tail
    assert 'path is unchanged (now adapter): set it to "adapters/support-bot-v2" (version = 2)' in tail
    # Once the manifest points at it and the registry promoted it, the hint says so.
    m = toy / "rollout.toml"
    m.write_text(m.read_text().replace('path = "adapter"', 'path = "adapters/support-bot-v2"'))
    from probes.registry.store import set_status

    set_status(toy / "registry.yaml", "support-bot", 2, "active")
    rc, out, _ = _doctor(capsys, "jobs", "show", job.id, "--rollout", str(toy))
    assert "already points at it" in out and 'registry v2 is "active"' in out and "mark it" not in out


def test_event_lines_round_floats(toy, capsys):  # noqa: F811
    store = api.JobStore(toy)
    job = store.create({"kind": "reeval", "rollout": str(toy)})
    store.add_event(job.id, {"event": "metrics", "step": 3, "loss": 0.15907132625579834, "learning_rate": 2e-4})
    rc, out, _ = _doctor(capsys, "jobs", "logs", job.id, "--rollout", str(toy))
    assert rc == 0 and "loss=0.1591" in out and "learning_rate=0.0002" in out and "step=3" in out


# ------------------------------------------------------------ 5. the registry lock file


def test_add_version_leaves_no_lock_file_and_stays_serialized(tmp_path):
    reg = tmp_path / "registry.yaml"
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(5):
                add_version(reg, {"name": "bot", "path": f"adapters/w{i}-{j}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = sorted(e["version"] for e in load(reg).versions("bot"))
    assert versions == list(range(1, 31))  # no lost or duplicate write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.yaml"]


# ------------------------------------------------------------ 6. triage answers


def test_from_triage_takes_answers(capsys):
    healthy = ROLLOUTS / "healthy"
    if not (healthy / "rollout.toml").is_file():
        pytest.skip("demo world not built (python fixtures/build.py)")
    with pytest.raises(SpecError, match=r"--answer user_reports_regression=yes\|no"):
        spec_from_triage(healthy)
    spec = spec_from_triage(healthy, answers={"user_reports_regression": "yes"})
    assert spec["kind"] == "reeval" and spec["source"]["answers"] == {"user_reports_regression": "yes"}
    args = ["jobs", "run", "--from-triage", str(healthy), "--dry-run", "--answer", "user_reports_regression=yes"]
    rc, out, _ = _doctor(capsys, *args)
    assert rc == 0 and json.loads(out)["spec"]["kind"] == "reeval"
    rc, _, err = _doctor(capsys, *args[:-1], "user_reports_regression=maybe")
    assert rc == 2 and "--answer" in err and "'maybe'" in err
    rc, _, err = _doctor(capsys, "jobs", "run", "spec.json", "--answer", "a=b")
    assert rc == 2 and "use it with --from-triage" in err


def test_comparison_and_event_lines_say_what_happened_not_none():
    from doctor.render.jobs_report import event_line as _event_line
    from doctor.render.jobs_report import render_comparison

    c = {
        "families": ["TRN"],
        "before": {"findings": 14, "accuracy": 0.0},
        "after": {"findings": 0, "accuracy": None},
        "training": {"final_loss": 0.1591, "first_non_finite_step": None},
    }
    text = "\n".join(render_comparison(c))
    assert "training: final loss 0.1591, every logged step finite" in text and "None" not in text
    c["training"]["first_non_finite_step"] = 23
    assert "first non-finite step 23" in "\n".join(render_comparison(c))
    line = _event_line({"event": "comparison", "ts": 0, "before": c["before"], "after": c["after"]})
    assert line.endswith("comparison findings 14 → 0; accuracy 0.0% → —"), line


def test_show_says_the_bounded_value_and_no_python_reprs(toy, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A relative override shows what it became; the registry line and the data slices read as text."""
    store = api.JobStore(toy)
    entry = add_version(toy / "registry.yaml", {"name": "support-bot", "path": "adapters/support-bot-v2"})
    spec = {
        "kind": "retrain",
        "rollout": str(toy),
        "method": "qlora",
        "overrides": {"learning_rate": "x0.5", "warmup_ratio": 0.03},
        "recipe": {"learning_rate": 0.0002, "warmup_ratio": 0.03},
        "data": {"train": "train.jsonl", "train_slices": ["arithmetic", "safety"]},
    }
    job = store.create(spec)
    outputs = {"version": 2, "registry": {"path": str(toy / "registry.yaml"), "entry": {**entry, "rollback_to": None}}}
    store.set_state(job.id, "succeeded", outputs=outputs)
    monkeypatch.chdir(tmp_path)
    _, out, _ = _doctor(capsys, "jobs", "show", job.id, "--rollout", str(toy))
    assert "learning_rate=x0.5 (= 0.0002)" in out and "warmup_ratio=0.03," not in out
    assert "(slices: arithmetic, safety)" in out and "['" not in out
    assert "rollback_to none (no earlier version passed the gate)" in out and "None" not in out


def test_overrides_name_the_value_a_relative_one_became():
    """The jobs screen and `jobs show` share this: x0.5 of lr 0.02 capped to the QLoRA top reads as 0.0002."""
    from doctor.playbook.recipe import describe_overrides

    recipe = {"learning_rate": 0.0002, "quantization": {"bnb_4bit_compute_dtype": "bfloat16"}}
    over = {"learning_rate": {"multiply": 0.5, "max": 2e-4}, "bnb_4bit_compute_dtype": "bfloat16", "x": 0.1 + 0.2}
    assert describe_overrides(over, recipe) == (
        "learning_rate=x0.5 (at most 0.0002) (= 0.0002), bnb_4bit_compute_dtype=bfloat16, x=0.3"
    )
    assert describe_overrides({"learning_rate": "x0.5"}, None) == "learning_rate=x0.5"


def test_list_says_a_reeval_passed_its_gate_not_that_it_fixed_something(toy, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A lab's prompt-only baseline is a re-eval: "fixed" in the list read as if it had repaired the rollout."""
    store = api.JobStore(toy)
    job = store.create({"kind": "reeval", "rollout": str(toy)})
    v = {"verdict": "fixed", "gate_passed": True, "why": "fixed: no error finding before or after"}
    store.set_state(job.id, "succeeded", outputs={}, comparison={"verdict": v})
    monkeypatch.chdir(tmp_path)
    _, out, _ = _doctor(capsys, "jobs", "list", str(toy))
    row = next(line for line in out.splitlines() if line.startswith(job.id))
    assert "gate passed" in row and "fixed" not in row
