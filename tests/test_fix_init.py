"""`doctor init` for folders made outside doctor, and job suggestions only where a job can run (CLI, TUI).

Fast: folders are written in the shapes HF Trainer/peft write (adapter_config.json, trainer_state.json,
training_args.json/.bin, a model card); the real-training variant is in tests/test_fix_loop.py.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from doctor.cli import main
from tests.conftest import FIXTURES, ROLLOUTS

sys.path.insert(0, str(Path(__file__).parent))
from test_fix_verdicts import _hf_run


def _doctor(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _trainer_output(tmp_path: Path) -> Path:
    """A Trainer output folder: the final adapter at the top (save_model), the log, the args, a card."""
    run = _hf_run(tmp_path / "hf-out", lr=5.0, clip=1.0)
    for f in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        shutil.copyfile(ROLLOUTS / "healthy" / "adapter" / f, run / f)
    return run


def test_init_on_a_bare_adapter_names_what_it_cannot_read(tmp_path, capsys):
    bare = tmp_path / "adapter"
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", bare)
    rc, out, _ = _doctor(capsys, "init", str(bare), "--no-input")
    assert rc == 1
    assert "missing: base model (--base-model DIR), training data (--train-data FILE)" in out
    assert "use_rslora=false" in out and "False" not in out  # as rollout.toml spells it
    m = tomllib.loads((bare / "rollout.toml").read_text())
    assert m["rollout"]["base_model_name"] == "peft-doctor/tiny-base"  # from adapter_config.json
    assert m["recipe"]["lora"]["r"] == 8 and m["adapters"][0]["path"] == "."
    # Again without --force: refused, the file is kept.
    rc, _, err = _doctor(capsys, "init", str(bare), "--no-input")
    assert rc == 2 and "exists; --force replaces it" in err


def test_init_on_trainer_output_reads_recipe_log_and_card(tmp_path, capsys):
    run = _trainer_output(tmp_path)
    rc, out, _ = _doctor(
        capsys, "init", str(run), "--base-model", str(FIXTURES / "models" / "tiny-base"),
        "--train-data", str(FIXTURES / "data" / "train.jsonl"), "--format", "json",
    )  # fmt: skip
    assert rc == 0, out
    report = json.loads(out)
    assert report["missing"] == []
    m = tomllib.loads((run / "rollout.toml").read_text())
    assert m["recipe"]["learning_rate"] == 5.0 and m["recipe"]["max_grad_norm"] == 1.0
    assert m["training"]["log_dir"] == "." and m["rollout"]["method"] == "lora"
    assert (run / Path(m["rollout"]["base_model"]) / "config.json").is_file() or Path(
        m["rollout"]["base_model"]
    ).is_absolute()
    # Now a job can be built: triage suggests it, with the learning rate inside the LoRA range.
    from doctor.jobs.api import spec_from_triage

    spec = spec_from_triage(run)
    assert spec["recipe"]["learning_rate"] == pytest.approx(2e-4)  # the top of the usual LoRA range


def test_init_reads_training_args_bin_without_running_it(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bare = tmp_path / "adapter"
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", bare)
    (bare / "training_args.bin").write_bytes(pickle.dumps(Payload()))  # dumps never calls the payload
    rc, out, _ = _doctor(capsys, "init", str(bare), "--no-input")
    assert not (tmp_path / "pwned").exists()
    assert rc == 1 and "training_args.bin not used" in out and "would run code" in out and "system(" in out


def test_triage_suggests_init_not_a_job_where_no_job_can_run(tmp_path, capsys):
    run = _hf_run(tmp_path / "hf-run", lr=5.0, clip=1.0)
    rc, out, _ = _doctor(capsys, "triage", str(run))
    assert "doctor jobs run" not in out and "doctor fix" not in out
    assert "cannot run here yet (missing: rollout.toml, base model (--base-model DIR)" in out
    assert f"doctor init {run}" in out or "doctor init " in out
    _doctor(capsys, "triage", str(run), "--format", "json")
    rc, out, _ = _doctor(capsys, "triage", str(run), "--format", "json")
    job = next(a["job"] for a in json.loads(out)["diagnosis"]["actions"] if a["kind"] == "job")
    assert job["runnable"] is False and "training data (--train-data FILE)" in job["missing"]
    rc, _, err = _doctor(capsys, "fix", str(run))
    assert rc == 2 and "doctor init" in err
    rc, _, err = _doctor(capsys, "jobs", "run", "--from-triage", str(run))
    assert rc == 2 and "doctor init" in err


def test_triage_on_a_demo_rollout_offers_the_job_and_doctor_fix(capsys):
    _, out, _ = _doctor(capsys, "triage", str(ROLLOUTS / "diverged"))
    assert "doctor jobs run --from-triage" in out and "doctor fix" in out and "cannot run here" not in out


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_tui_offers_init_instead_of_a_job_that_cannot_run(tmp_path):
    from test_tui_support import screen_text, settle, wait_for

    from doctor.core.settings import Settings
    from doctor.tui import make_app

    run = _hf_run(tmp_path / "hf-run", lr=5.0, clip=1.0)
    app = make_app([run], Settings())
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert await wait_for(pilot, lambda: "cannot run here yet" in screen_text(app), timeout=60), screen_text(app)
        assert "(enter or l to launch)" not in screen_text(app)
        screen = app.screen
        ol = screen.query_one("#actions")
        ol.highlighted = next(i for i, a in enumerate(screen.actions) if a["kind"] == "job")
        await pilot.press("l")
        await pilot.pause(0.3)
        assert app.screen is screen  # no confirmation dialog: nothing to launch
        assert any("doctor init" in str(n.message) for n in app._notifications)


@pytest.mark.anyio
async def test_job_confirmation_summary_first_scrolls_and_buttons_fit_80x24(tmp_path):
    from test_tui_support import screen_text, settle

    from doctor.core.settings import Settings
    from doctor.jobs.api import spec_from_action
    from doctor.tui import make_app
    from doctor.tui.screens.confirm import ConfirmJobScreen

    world = tmp_path / "fixtures"
    world.mkdir()
    for part in ("models", "data"):
        (world / part).symlink_to(FIXTURES / part)
    shutil.copytree(ROLLOUTS / "qlora-unstable", world / "rollouts" / "qlora-unstable")
    root = world / "rollouts" / "qlora-unstable"
    spec = spec_from_action(root, {"kind": "retrain", "overrides": {"learning_rate": "x0.5", "max_grad_norm": 0.3}})
    app = make_app([root], Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(ConfirmJobScreen(spec, "Retrain with a bounded learning rate"))
        await pilot.pause(0.3)
        text = screen_text(app)
        # the summary comes first: what changes, from → to (the spec follows below it)
        assert "Launch this job?  retrain qlora: learning_rate 0.02 → 0.0002" in text, text
        assert text.index("Launch this job?") < text.index('"schema"')
        screen = app.screen
        for bid in ("#launch", "#cancel"):  # both buttons inside the 80x24 screen
            region = screen.query_one(bid).region
            assert region.height > 0 and region.bottom <= 24 and region.right <= 80, (bid, region)
        box = screen.query_one("#confirm-spec")
        assert box.max_scroll_y > 0  # the spec is longer than the room it has
        await pilot.press("pagedown")
        await pilot.pause()
        assert box.scroll_y > 0
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is not screen


def _attempt_job(root: Path, attempt: int, verdict: str, why: str):
    from doctor.jobs.store import JobStore

    store = JobStore(root)
    spec = {"schema": "peft-doctor/job/1", "kind": "retrain", "rollout": str(root), "source": {"fix_attempt": attempt}}
    job = store.create(spec)
    v = {"verdict": verdict, "gate_passed": verdict == "fixed", "resolved": ["TRN001"], "remaining": [],
         "new": [], "slices_vs_baseline": [], "slices_vs_before": [], "why": why}  # fmt: skip
    comparison = {
        "families": ["TRN"], "before": {"findings": 3, "rules": ["TRN001"], "accuracy": 0.2},
        "after": {"findings": 1, "rules": [], "accuracy": 0.6}, "resolved": [], "new": [], "persisting": [],
        "slices": [], "verdict": v,
    }  # fmt: skip
    store.set_state(job.id, "succeeded", outputs={"version": attempt + 1}, comparison=comparison)
    return job.id


@pytest.mark.anyio
async def test_jobs_screen_shows_fix_attempts_and_their_verdicts(tmp_path):
    from test_tui_support import screen_text, settle, wait_for

    from doctor.core.settings import Settings
    from doctor.tui import make_app

    root = tmp_path / "ro"
    shutil.copytree(ROLLOUTS / "healthy" / "eval", root / "eval")
    first = _attempt_job(root, 1, "not_fixed", "not fixed: still there: TRN003")
    second = _attempt_job(root, 2, "fixed", "fixed: gone: TRN003; no new error")
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("j")
        assert await wait_for(pilot, lambda: "fixed #2" in screen_text(app), timeout=60), screen_text(app)
        table = app.screen.query_one("#jobs-table")
        states = {str(table.get_row(k)[0]): str(table.get_row(k)[3]) for k in (first, second)}
        assert states[first] == "✓ not fixed #1" and states[second] == "✓ fixed #2"
        assert await wait_for(pilot, lambda: "doctor fix attempt" in screen_text(app), timeout=30)
        text = screen_text(app)
        assert "verdict: fixed" in text or "verdict: not fixed" in text
        assert "fixed: gone: TRN003" in text or "not fixed: still there: TRN003" in text


def test_triage_states_the_verdicts_of_the_fixes_tried(tmp_path, capsys):
    root = tmp_path / "fixtures" / "rollouts" / "diverged"
    shutil.copytree(ROLLOUTS / "diverged", root, ignore=shutil.ignore_patterns(".doctor"))
    _attempt_job(root, 1, "not_fixed", "not fixed: still there: TRN003, CFG001")
    _, out, _ = _doctor(capsys, "triage", str(root))
    assert "Fixes tried on this rollout" in out and "(retrain v2): not fixed: still there: TRN003, CFG001" in out
    _, out, _ = _doctor(capsys, "triage", str(root), "--format", "json")
    (jv,) = json.loads(out)["jobs"]
    assert jv["verdict"] == "not_fixed" and jv["fix_attempt"] == 1 and jv["version"] == 2


def test_triage_does_not_ask_for_a_base_model_init_finds_itself(tmp_path, capsys):
    """A Trainer folder whose adapter_config.json names a local base: `doctor init` reads it, so the hint
    asks only for what is really missing (the training data)."""
    run = _hf_run(tmp_path / "hf-run", lr=5.0, clip=1.0)
    shutil.copytree(ROLLOUTS.parent / "models" / "tiny-base", run / "base")
    cfg = json.loads((ROLLOUTS / "healthy" / "adapter" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(run / "base")
    (run / "adapter_config.json").write_text(json.dumps(cfg))
    shutil.copyfile(ROLLOUTS / "healthy" / "adapter" / "adapter_model.safetensors", run / "adapter_model.safetensors")
    _, out, _ = _doctor(capsys, "triage", str(run))
    assert "cannot run here yet (missing: rollout.toml, training data (--train-data FILE))" in out, out
    assert "--base-model DIR" not in out
