"""The fix loop tells the truth: verdicts, the registry following them, bounded LR fixes, evidence-built text.

Fast: no training here (tests/test_fix_loop.py runs real jobs). Tables, registries and logs are written
into tmp_path in the formats the jobs and HF Trainer write.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctor.core.model import Artifact, Finding, Severity
from doctor.core.settings import Settings
from doctor.jobs.lrbounds import METHOD_RANGES, bound_lr, in_range
from doctor.jobs.monitor import register
from doctor.jobs.spec import spec_from_action
from doctor.jobs.verdict import judge, paired_slices
from doctor.playbook.tree import PLAYBOOK_DIR, Evidence, Walker, load_all
from probes.registry.store import add_version, load


def _table(path: Path, variant: str, acc: dict[str, float], n: int = 60) -> Path:
    """An eval table as the job worker writes it: the first round(acc*n) examples of each slice correct."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "slice", "variant", "prompt", "reference", "output", "score", "refused", "latency_ms"])
        for sl, a in acc.items():
            for i in range(n):
                w.writerow([f"{sl}-{i}", sl, variant, "p", "r", "o", int(i < round(a * n)), 0, 1.0])
    return path


def _snap(*rules: str) -> dict:
    return {"findings": [{"rule": r, "severity": "error", "title": r, "message": ""} for r in rules]}


BASE = {"arithmetic": 0.55, "reverse": 0.5, "safety": 0.9}


@pytest.fixture
def tables(tmp_path: Path):
    def make(before: dict, after: dict) -> tuple[Path, Path, Path]:
        return (
            _table(tmp_path / "base.csv", "base", BASE),
            _table(tmp_path / "before.csv", "qlora", before),
            _table(tmp_path / "after.csv", "qlora", after),
        )

    return make


def _judge(before_rules, after_rules, tabs):
    base, before, after = tabs
    return judge(
        _snap(*before_rules),
        _snap(*after_rules),
        kind="retrain",
        before_table=before,
        after_table=after,
        baseline_table=base,
    )


def test_errors_gone_and_slices_at_baseline_is_fixed(tables):
    v = _judge(["TRN001", "TRN003"], [], tables({"arithmetic": 0.15, "reverse": 0.5, "safety": 0.9}, BASE))
    assert v["verdict"] == "fixed" and v["gate_passed"]
    assert v["resolved"] == ["TRN001", "TRN003"] and v["remaining"] == [] and v["new"] == []
    arith = next(s for s in v["slices_vs_before"] if s["slice"] == "arithmetic")
    assert arith["status"] == "improvement" and arith["delta"] == pytest.approx(0.4, abs=0.01)


def test_slice_still_below_baseline_keeps_it_from_fixed_and_says_by_how_much(tables):
    # qlora-unstable as the issue saw it: the errors went, but arithmetic sits at 15% against 55% for the base.
    stuck = {"arithmetic": 0.15, "reverse": 0.5, "safety": 0.9}
    v = _judge(["TRN001"], [], tables(stuck, stuck))
    assert v["verdict"] == "not_fixed" and not v["gate_passed"]  # the errors went, the regression did not move
    assert "arithmetic 15.0% vs 55.0% base (-40.0pp" in v["why"] and "n=60" in v["why"]
    assert "no slice improved" in v["why"]
    # Half-way back to the baseline: partly fixed.
    v = _judge(["TRN001"], [], tables({**stuck, "arithmetic": 0.0}, stuck))
    assert v["verdict"] == "partly_fixed" and "arithmetic 15.0% vs 55.0% base" in v["why"]


def test_small_dip_inside_noise_is_not_a_regression(tables):
    v = _judge(["TRN001"], [], tables(BASE, {**BASE, "arithmetic": 0.5}))  # 3 of 60 examples
    assert v["verdict"] == "fixed"
    arith = next(s for s in v["slices_vs_baseline"] if s["slice"] == "arithmetic")
    assert arith["status"] == "ok" and arith["ci_low"] < 0 < arith["ci_high"] + 0.05


def test_errors_that_stay_are_not_fixed_and_new_ones_are_worse(tables):
    tabs = tables(BASE, BASE)
    v = _judge(["TRN001", "TRN003"], ["TRN001", "TRN003"], tabs)
    assert v["verdict"] == "not_fixed" and v["remaining"] == ["TRN001", "TRN003"]
    assert _judge(["TRN001", "TRN003"], ["TRN003"], tabs)["verdict"] == "partly_fixed"
    w = _judge(["TRN003"], ["TRN003", "ADP006"], tabs)
    assert w["verdict"] == "worse" and w["new"] == ["ADP006"]
    fell = _judge(["TRN003"], ["TRN003"], tables(BASE, {**BASE, "reverse": 0.1}))
    assert fell["verdict"] == "worse" and "worse than before: reverse 10.0%" in fell["why"]


def test_paired_stats_pair_by_id_only(tmp_path):
    a = _table(tmp_path / "a.csv", "base", {"s": 0.5}, n=40)
    b = _table(tmp_path / "b.csv", "lora", {"s": 0.5}, n=20)  # ids s-0..s-19: all correct in a, half in b
    (row,) = paired_slices(a, b)
    assert row["n"] == 20 and row["base"] == 1.0 and row["cand"] == 0.5


# ---------------------------------------------------------------- the registry follows the verdict


def _rollout_with_registry(tmp_path: Path) -> Path:
    root = tmp_path / "ro"
    (root / "adapter").mkdir(parents=True)
    (root / "rollout.toml").write_text(
        'adapters = [{ name = "bot", version = 1, path = "adapter" }]\n[rollout]\nname = "ro"\n'
        '[serving]\nregistry = "registry.yaml"\n'
    )
    add_version(root / "registry.yaml", {"name": "bot", "path": "adapter", "status": "canary"})  # the NaN v1
    return root


def _register(root: Path, version: int, verdict: str, targeted=("TRN001",)) -> dict:
    folder = root / "adapters" / f"bot-v{version}"
    folder.mkdir(parents=True)
    spec = {"base_model": "b", "method": "lora", "recipe": {}}
    return register(root, "bot", version, folder, spec, root / "out", {"verdict": verdict, "targeted": list(targeted)})


def test_a_version_that_is_not_fixed_is_rejected_and_changes_nothing_else(tmp_path):
    root = _rollout_with_registry(tmp_path)
    before = load(root / "registry.yaml").entries
    e = _register(root, 2, "not_fixed")
    assert e["status"] == "rejected" and e["gate"] == "failed" and e["rollback_to"] is None
    after = load(root / "registry.yaml").entries
    assert after[:1] == before  # v1 untouched, its rollback_to unchanged


def test_one_canary_per_name_and_rollback_only_to_versions_that_passed(tmp_path):
    root = _rollout_with_registry(tmp_path)
    _register(root, 2, "partly_fixed")
    v3 = _register(root, 3, "fixed")
    reg = load(root / "registry.yaml")
    # v1 was the rollout's adapter, broken by the before-probe: rejected, never a rollback target.
    assert [e["status"] for e in reg.entries] == ["rejected", "rejected", "canary"]
    assert v3["rollback_to"] is None
    v4 = _register(root, 4, "fixed")
    reg = load(root / "registry.yaml")
    assert [e["status"] for e in reg.entries] == ["rejected", "rejected", "retired", "canary"]
    assert v4["rollback_to"] == 3
    assert sum(e["status"] == "canary" for e in reg.entries) == 1


def test_a_rejected_version_cannot_be_promoted(tmp_path):
    from probes.registry.store import set_status

    root = _rollout_with_registry(tmp_path)
    _register(root, 2, "not_fixed")
    with pytest.raises(ValueError, match="rejected"):
        set_status(root / "registry.yaml", "bot", 2, "active")


# ---------------------------------------------------------------- bounded learning-rate fixes

rates = st.one_of(st.none(), st.floats(min_value=1e-12, max_value=1e4, allow_nan=False), st.just(0.0))


@given(recorded=rates, proposed=rates, method=st.sampled_from(sorted(METHOD_RANGES)))
def test_bound_lr_is_inside_the_method_range_for_any_input(recorded, proposed, method):
    fix = bound_lr(recorded, proposed, method)
    assert in_range(fix.value, method), fix
    hi = METHOD_RANGES[method][1]
    if recorded and recorded > hi:
        assert fix.value <= hi  # evidence far past the range: back to its top at most, in one step


def _lr_actions() -> list[dict]:
    out = []
    for pb in load_all(PLAYBOOK_DIR).values():
        for node in pb.nodes.values():
            for a in node.get("actions") or []:
                if a["kind"] == "job" and "learning_rate" in (a["job"].get("overrides") or {}):
                    out.append(a["job"])
    return out


@pytest.fixture(scope="module")
def toy_rollout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    (root / "base").mkdir()
    (root / "base" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (root / "train.jsonl").write_text('{"prompt": "a", "response": "b", "slice": "s"}\n')
    (root / "rollout.toml").write_text(
        '[rollout]\nname = "toy"\nmethod = "lora"\nbase_model = "base"\n[data]\ntrain = "train.jsonl"\n'
        "[recipe]\nlearning_rate = 1.0\nmax_steps = 10\n"
    )
    return root


def test_every_playbook_lr_action_is_found():
    assert len(_lr_actions()) >= 4  # qlora_precision, lr_far_too_high, lr_high, style_overfit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lr=st.floats(min_value=1e-9, max_value=1e3, allow_nan=False),
    qlora=st.booleans(),
    dpo=st.booleans(),
    optim=st.sampled_from([None, "adamw_torch", "lion_32bit", "sgd"]),
    action=st.sampled_from(_lr_actions()),
)
def test_every_playbook_action_keeps_the_learning_rate_inside_the_method_range(
    toy_rollout, lr, qlora, dpo, optim, action
):
    recipe = {"learning_rate": lr, "max_steps": 10}
    if optim:
        recipe["optim"] = optim
    if qlora:
        recipe["quantization"] = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16"}
    if dpo:
        recipe["beta"] = 0.1  # a DPO-style recipe
    spec = spec_from_action(toy_rollout, action, base_recipe=recipe)
    method = "dpo" if dpo else ("qlora" if qlora else "lora")
    assert in_range(spec["recipe"]["learning_rate"], method, recipe), (lr, method, spec["source"]["learning_rate"])
    assert spec["source"]["changes"].get("learning_rate", [lr])[0] == lr  # unchanged when already at the floor


# ---------------------------------------------------------------- diagnosis text from the evidence that fired

# What a diagnosis would claim about each symptom (the phrasing the playbooks use, and the examples).
CLAIMS = {
    "non_finite": r"\b(goes|went|go) non-finite",
    "adapter_non_finite": r"non-finite weights",
    "loss_spike": r"\bspike",
    "divergence": r"\bdiverg",
    "grad_explosion": r"\bexplod",
    "safety_regression": r"refusal",
    "precision_risk": r"\bfp16\b",
    "lr_too_high": r"learning rate is (far )?above",
    "not_learning": r"flat or zero",
    "dead_adapter": r"lora_B stayed zero",
    "quantization_config": r"differ from the QLoRA recipe",
    "slice_regression": r"(some regress|slice drops|overwrites behaviour)",
}
ALL_SYMPTOMS = sorted(set(CLAIMS) | {"narrow_coverage", "overfitting", "rank_exceeds_limit", "adapter_unreadable"})
BOOKS = load_all(PLAYBOOK_DIR)


@settings(max_examples=150, deadline=None)
@given(
    present=st.sets(st.sampled_from(ALL_SYMPTOMS)),
    clip=st.sampled_from([None, 0.0, 1.0]),
    severity=st.sampled_from(["error", "warning"]),
)
def test_diagnosis_never_names_a_symptom_the_evidence_does_not_show(present, clip, severity):
    findings = [Finding("TRN900", Severity(severity), s, "m", Path("x"), symptoms=(s,)) for s in sorted(present)]
    facts = {"recipe": {"max_grad_norm": clip}} if clip is not None else {}
    kinds = ("training_log", "eval_table", "serving_config", "adapter")
    ev = Evidence(findings, [Artifact(Path(k), k, facts if k == "training_log" else {}) for k in kinds])
    t = Walker(BOOKS).walk(ev)
    for symptom, claim in CLAIMS.items():
        if symptom not in present:
            assert not re.search(claim, t.diagnosis, re.I), (symptom, sorted(present), t.diagnosis)
    said_off = "max_grad_norm=0" in t.diagnosis
    assert not said_off or clip == 0.0
    assert "Clipping is on" not in t.diagnosis or clip == 1.0
    for step in t.path:  # and a node that answered no is never contradicted by an action's precondition
        if step.answer == "no" and "rank_exceeds_limit" not in present:
            assert not any("max-lora-rank" in a["text"] for a in t.actions)


def _hf_run(folder: Path, lr: float, clip: float) -> Path:
    """A plain HF Trainer output folder (no rollout.toml): trainer_state.json + training_args.json."""
    folder.mkdir(parents=True)
    hist = []
    for step in range(1, 41):
        loss = 2.0 + (0.0 if step < 10 else (step - 10) * 0.8)  # climbs steadily after step 10: divergence
        gn = 3.0 if step < 10 else 10.0 ** (1 + (step - 10) / 8)
        hist.append({"step": step, "epoch": step / 40, "loss": loss, "grad_norm": gn, "learning_rate": lr})
    (folder / "trainer_state.json").write_text(
        json.dumps({"global_step": 40, "max_steps": 40, "logging_steps": 1, "log_history": hist})
    )
    (folder / "training_args.json").write_text(
        json.dumps({"output_dir": str(folder), "learning_rate": lr, "max_grad_norm": clip, "max_steps": 40})
    )
    return folder


def test_clipping_already_on_ranks_gradient_control_below_the_learning_rate(tmp_path):
    from doctor.playbook.triage import run_triage

    run = _hf_run(tmp_path / "hf-run", lr=5.0, clip=1.0)
    (rt,) = run_triage([run], Settings())
    causes = [c.cause for c in rt.triage.causes]
    assert causes[0] == "lr_too_high", rt.triage.causes
    if "missing_gradient_control" in causes:
        gc = next(c for c in rt.triage.causes if c.cause == "missing_gradient_control")
        assert "clipping is already on" in gc.text
    # The learning-rate action, applied to this recipe, lands in the LoRA range (not 5.0 halved to 2.5).
    job = next(a["job"] for a in rt.triage.actions if a["kind"] == "job")
    lr_override = job["overrides"]["learning_rate"]
    from doctor.playbook.recipe import apply_overrides

    proposed = apply_overrides({"learning_rate": 5.0}, {"learning_rate": lr_override})["learning_rate"]
    assert bound_lr(5.0, proposed, "lora").value == METHOD_RANGES["lora"][1]


# ---------------------------------------------------------------- escalation (the loop's decisions)


def test_fix_loop_escalates_from_the_last_attempts_evidence_and_recipe(tmp_path, monkeypatch):
    """The worker is replaced by recorded outputs (attempt 1: the run still diverges; attempt 2: fixed), so
    this checks the loop's choices; tests/test_fix_loop.py runs it with real training."""
    import shutil as sh

    from doctor.jobs import fixloop
    from doctor.jobs.compare import write_after_manifest
    from doctor.jobs.store import JobStore, job_dir
    from tests.conftest import FIXTURES, ROLLOUTS

    world = tmp_path / "fixtures"
    world.mkdir()
    for part in ("models", "data"):
        (world / part).symlink_to(FIXTURES / part)
    root = world / "rollouts" / "diverged"
    sh.copytree(ROLLOUTS / "diverged", root, ignore=sh.ignore_patterns(".doctor"))
    verdicts = iter(["not_fixed", "fixed"])
    seen_lr = []

    def fake_run(spec, rollout, launcher="local", *, on_event=None, on_created=None):
        store = JobStore(rollout)
        job = store.create(spec)
        on_created and on_created(job)
        seen_lr.append(spec["recipe"]["learning_rate"])
        out = job_dir(rollout, job.id) / "out"
        sh.copytree(root / "train", out / "train")  # recorded: the run still diverges
        sh.copytree(root / "eval", out / "eval")
        write_after_manifest(spec, out, job.id)
        v = next(verdicts)
        verdict = {"verdict": v, "resolved": [], "remaining": [] if v == "fixed" else ["TRN003"], "new": [],
                   "why": f"{v}: recorded", "gate_passed": v == "fixed"}  # fmt: skip
        store.set_state(job.id, "succeeded", outputs={"version": len(seen_lr) + 1}, comparison={"verdict": verdict})
        return store.get(job.id)

    monkeypatch.setattr(fixloop.api, "run", fake_run)
    report = fixloop.run_fix(root, attempts=3, budget_min=30)
    assert report["schema"] == "peft-doctor/fix/1" and report["verdict"] == "fixed" and report["best_version"] == 3
    assert [a["verdict"] for a in report["attempts"]] == ["not_fixed", "fixed"] and report["stopped"] == "fixed"
    # attempt 2 started from attempt 1's recipe: the rate went down again, still inside the LoRA range
    assert seen_lr[0] == pytest.approx(2e-4) and seen_lr[1] < seen_lr[0] and in_range(seen_lr[1], "lora")
    assert report["attempts"][1]["changes"]["learning_rate"][0] == pytest.approx(2e-4)
    log = (root / ".doctor" / "fix-log.jsonl").read_text().splitlines()
    assert [json.loads(x)["attempt"] for x in log] == [1, 2]
    jobs = JobStore(root).list_jobs()
    assert sorted(j.spec["source"]["fix_attempt"] for j in jobs) == [1, 2]


def test_fix_loop_stops_at_the_budget_and_reports_the_best_attempt(tmp_path, monkeypatch):
    import shutil as sh

    from doctor.jobs import fixloop
    from doctor.jobs.store import JobStore
    from tests.conftest import FIXTURES, ROLLOUTS

    world = tmp_path / "fixtures"
    world.mkdir()
    for part in ("models", "data"):
        (world / part).symlink_to(FIXTURES / part)
    root = world / "rollouts" / "diverged"
    sh.copytree(ROLLOUTS / "diverged", root, ignore=sh.ignore_patterns(".doctor"))
    import time as real_time
    import types

    clock = iter([0.0, 0.0, 0.0, 0.0])  # start, budget check, timer, attempt start; then 700 s have passed
    fake_time = types.SimpleNamespace(
        monotonic=lambda: next(clock, 700.0), strftime=real_time.strftime, gmtime=real_time.gmtime
    )
    monkeypatch.setattr(fixloop, "time", fake_time)

    def fake_run(spec, rollout, launcher="local", *, on_event=None, on_created=None):
        store = JobStore(rollout)
        job = store.create(spec)
        verdict = {"verdict": "partly_fixed", "resolved": ["TRN001"], "remaining": ["TRN003"], "new": [],
                   "why": "partly fixed: gone: TRN001; still there: TRN003", "gate_passed": False}  # fmt: skip
        store.set_state(job.id, "succeeded", outputs={"version": 2}, comparison={"verdict": verdict})
        return store.get(job.id)

    monkeypatch.setattr(fixloop.api, "run", fake_run)
    report = fixloop.run_fix(root, attempts=3, budget_min=15)  # attempt 1 "took" 700 s of 900
    assert len(report["attempts"]) == 1 and report["stopped"].startswith("budget")
    assert report["verdict"] == "partly_fixed" and "still there: TRN003" in report["still_wrong"]


def test_fix_console_report_names_each_attempt_and_what_is_still_wrong():
    from doctor.render.fix_report import render

    report = {
        "rollout": "ro", "verdict": "not_fixed", "best_version": None, "best_attempt": 1,
        "stopped": "budget of 30 min reached: attempt 1 was cancelled (cancelled on request at step 194/400)",
        "still_wrong": "not fixed: the job cancelled", "elapsed_s": 1813.7, "fix_log": "ro/.doctor/fix-log.jsonl",
        "attempts": [{"attempt": 1, "version": None, "verdict": "not_fixed", "wall_s": 1811.2, "job": "J1",
                      "changes": {"data.train_slices": [["arithmetic"], "all"], "warmup_ratio": [None, 0.03]}}],
    }  # fmt: skip
    text = render(report)
    assert "warmup_ratio unset→0.03" in text and "None" not in text
    assert text.splitlines()[0] == "doctor fix ro: NOT FIXED"
    assert "attempt 1: no version not_fixed" in text and 'data.train_slices ["arithmetic"]→all' in text
    assert "still wrong: not fixed: the job cancelled" in text and "budget of 30 min reached" in text
