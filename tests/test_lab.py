"""`doctor lab` without training: the spec, the decision on constructed eval tables, the report schema, and the
canary rollback rule (EVL040-043) through `doctor check`. The real lab runs in tests/test_lab_e2e.py (slow)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from doctor.cli import main
from doctor.lab import run as L
from doctor.lab.spec import LabSpecError, init_text, load_lab_spec
from doctor.render import lab_report as R
from tests.conftest import FIXTURES, REPO, ROLLOUTS

SCHEMA = json.loads((REPO / "docs" / "lab.schema.json").read_text())
SLICES = ("arithmetic", "count", "reverse", "safety")


def write_spec(tmp_path: Path, rollout: Path, **tables: dict) -> Path:
    """A lab spec for `rollout` from `doctor lab init`, with some tables replaced."""
    path = tmp_path / "lab.toml"
    text = init_text(rollout, path)
    for name, body in tables.items():
        head = f"[{name}]"
        start = text.index(head)
        end = text.find("\n[", start + 1)
        block = head + "\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items())
        text = text[:start] + block + (text[end:] if end != -1 else "")
    path.write_text(text)
    return path


def world(tmp_path: Path) -> Path:
    dst = tmp_path / "fixtures"
    for part in ("models", "data"):
        shutil.copytree(FIXTURES / part, dst / part)
    shutil.copytree(ROLLOUTS / "healthy", dst / "rollouts" / "healthy", ignore=shutil.ignore_patterns(".doctor"))
    return dst / "rollouts" / "healthy"


def table(path: Path, variant: str, correct: dict[str, int], n: int = 100, refused_safety: int | None = None) -> Path:
    """An eval table: on each slice the first `correct[slice]` of n examples are right (so variants pair)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "slice", "variant", "score", "refused", "latency_ms"])
        for sl in SLICES:
            for i in range(n):
                ok = int(i < correct[sl])
                refused = (
                    ok
                    if sl == "safety" and refused_safety is None
                    else int(sl == "safety" and i < (refused_safety or 0))
                )
                w.writerow([f"{sl}-{i:03d}", sl, variant, ok, refused, 1.0])
    return path


def job(name: str, eval_table: Path, correct: dict[str, int], rank: int | None, n: int = 100) -> dict:
    lab = {
        "variant": name,
        "device": "cpu",
        "serving": {"base": {"p50": 10.0, "p95": 12.0, "decode_tokens_per_s": 100.0}},
    }
    if rank is not None:
        lab.update(
            trainable_params=8192 * rank,
            adapter_bytes=40_000 * rank,
            peak_memory_bytes=500_000_000 + rank,
            memory_kind="process_peak_rss",
            train_tokens_per_s=2000.0 + rank,
        )
        lab["serving"].update(
            unmerged={"p50": 15.0, "p95": 20.0, "decode_tokens_per_s": 70.0},
            merged={"p50": 10.5, "p95": 12.5, "decode_tokens_per_s": 95.0},
        )
    ev = {
        "n": n * len(SLICES),
        "accuracy": round(sum(correct.values()) / (n * len(SLICES)), 4),
        "slices": {
            s: {"n": n, "accuracy": correct[s] / n, "refusal_rate": correct[s] / n if s == "safety" else 0.0}
            for s in SLICES
        },
    }
    return {
        "id": f"job-{name}",
        "state": "succeeded",
        "error": None,
        "spec": {"recipe": {}},
        "outputs": {"eval_table": str(eval_table), "eval": ev, "lab": lab, "version": 2 + (rank or 0),
                    "adapter": str(eval_table.parent), "train": {"global_step": 60}},
    }  # fmt: skip


BASE = {"arithmetic": 50, "count": 97, "reverse": 40, "safety": 100}
SWEEP = {  # r2 misses the reverse gain; r4 is the smallest that gains >= 5 pts everywhere; r8 too
    "lora-r2": {"arithmetic": 62, "count": 98, "reverse": 42, "safety": 100},
    "lora-r4": {"arithmetic": 64, "count": 98, "reverse": 52, "safety": 100},
    "lora-r8": {"arithmetic": 66, "count": 99, "reverse": 55, "safety": 100},
    "qlora-r4": {"arithmetic": 63, "count": 98, "reverse": 50, "safety": 100},
}


def lab_from(tmp_path: Path, outcomes: dict[str, dict[str, int]], **spec_tables: dict):
    rollout = world(tmp_path)
    spec = load_lab_spec(write_spec(tmp_path, rollout, **spec_tables))
    jobs = {"prompt_only": job("prompt_only", table(tmp_path / "t" / "po.csv", "prompt_only", BASE), BASE, None)}
    methods = {"prompt_only": ("prompt_only", None)}
    for name, correct in outcomes.items():
        method, rank = name.split("-r")
        jobs[name] = job(name, table(tmp_path / "t" / f"{name}.csv", name, correct), correct, int(rank))
        methods[name] = (method, int(rank))
    return spec, jobs, methods


def test_init_writes_a_spec_that_loads(tmp_path):
    out = tmp_path / "lab.toml"
    assert main(["lab", "init", str(ROLLOUTS / "healthy"), "-o", str(out)]) == 0
    spec = load_lab_spec(out)
    assert spec.lora["ranks"] == [2, 4, 8, 16]
    assert spec.rollout == (ROLLOUTS / "healthy").resolve()
    assert spec.base_model == (FIXTURES / "models" / "tiny-base").resolve()
    assert spec.adapter_name == "support-bot" and spec.qlora["rank"] == "chosen"
    assert main(["lab", "init", str(ROLLOUTS / "healthy"), "-o", str(out)]) == 2  # no silent overwrite


@pytest.mark.parametrize(
    ("table_name", "body", "needle"),
    [
        ("variants.lora", {"ranks": [4, 0]}, "[variants.lora] ranks"),
        ("variants.lora", {"rank": [4]}, "[variants.lora] rank: unknown key"),
        ("budget", {"max_steps": "many"}, "[budget] max_steps"),
        ("target", {"min_slice_gain": 5}, "[target] min_slice_gain"),
        ("variants.prompt_only", {"template": "no placeholder"}, "[variants.prompt_only] template"),
    ],
)
def test_bad_spec_names_file_and_key(tmp_path, capsys, table_name, body, needle):
    path = write_spec(tmp_path, ROLLOUTS / "healthy", **{table_name: body})
    with pytest.raises(LabSpecError, match=None) as exc:
        load_lab_spec(path)
    assert str(path) in str(exc.value) and needle in str(exc.value)
    assert main(["lab", "run", str(path)]) == 2
    assert needle in capsys.readouterr().err


def test_missing_base_model_is_a_usage_error(tmp_path, capsys):
    path = write_spec(tmp_path, ROLLOUTS / "healthy")
    path.write_text(path.read_text().replace('base_model = "', 'base_model = "nowhere/'))
    assert main(["lab", "run", str(path)]) == 2
    assert "[lab] base_model" in capsys.readouterr().err


def test_chosen_is_the_smallest_rank_meeting_the_target(tmp_path):
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    rows = {v["name"]: v for v in report["variants"]}
    assert [n for n, v in rows.items() if v["meets_target"]] == ["lora-r4", "lora-r8", "qlora-r4"]
    assert report["chosen"] == "lora-r4" and rows["lora-r4"]["chosen"]
    assert "lora-r2: reverse +2.0 pts" in report["why"]  # why the smaller rank fails, with its number
    assert "QLoRA vs LoRA at r=4" in report["why"] and report["peft_justified"] is True
    # count is at the 95% ceiling: +1 pt does not fail it; the paired interval comes from the eval-slice stats
    assert rows["lora-r2"]["slices"]["count"]["delta"] == pytest.approx(0.01)
    assert rows["lora-r4"]["slices"]["reverse"] == {
        **rows["lora-r4"]["slices"]["reverse"], "n": 100, "accuracy": 0.52, "delta": pytest.approx(0.12)}  # fmt: skip
    lo, hi = rows["lora-r4"]["slices"]["reverse"]["ci_low"], rows["lora-r4"]["slices"]["reverse"]["ci_high"]
    assert 0 < lo < 0.12 < hi
    # report numbers are the jobs' own outputs
    for name in SWEEP:
        lab = jobs[name]["outputs"]["lab"]
        for key in ("trainable_params", "adapter_bytes", "peak_memory_bytes", "memory_kind", "train_tokens_per_s"):
            assert rows[name][key] == lab[key]
        assert rows[name]["latency_ms"] == {"p50": 15.0, "p95": 20.0}  # the unmerged served form
        for sl, s in jobs[name]["outputs"]["eval"]["slices"].items():
            assert rows[name]["slices"][sl]["accuracy"] == s["accuracy"]
    po = rows["prompt_only"]
    assert po["rank"] is None and po["trainable_params"] is None and po["peak_memory_bytes"] is None
    assert po["slices"]["arithmetic"]["accuracy"] == 0.5
    jsonschema.validate(report, SCHEMA)
    # the console table: the chosen row marked, compact cells with the significance glyph
    from rich.console import Console

    console = Console(width=120, record=True)
    R.render_console(report, console)
    text = console.export_text()
    assert "▶ lora-r4" in text and "52.0 +12.0▲" in text and "chosen: lora-r4" in text


def test_prefer_memory_takes_qlora_at_the_chosen_rank(tmp_path):
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    spec.prefer = "memory"
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    assert report["chosen"] == "qlora-r4"


def test_no_gain_beyond_noise_says_peft_is_not_justified(tmp_path):
    flat = {"lora-r2": dict(BASE), "lora-r4": {**BASE, "arithmetic": 51}}
    spec, jobs, methods = lab_from(tmp_path, flat)
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    assert report["chosen"] is None and report["peft_justified"] is False
    assert "PEFT is not justified here" in report["why"]
    assert "lora-r4: arithmetic +1.0 pts" in report["why"]
    jsonschema.validate(report, SCHEMA)
    md = R.to_markdown(report)
    assert "**Chosen:** none" in md and "| lora-r4 | 4 |" in md


def test_safety_regression_fails_the_target(tmp_path):
    worse = {"lora-r2": {**SWEEP["lora-r4"], "safety": 90}}
    spec, jobs, methods = lab_from(tmp_path, worse)
    rows = L._rows(spec, jobs, methods)
    r2 = rows[1]
    assert r2["refusal_rate"] == 0.9 and r2["refusal_delta"] == pytest.approx(-0.1)
    assert r2["safety_ok"] is False and not r2["meets_target"]
    assert any("refusal rate 90.0% dropped -10.0 pts" in f for f in r2["failures"])


def test_canary_is_registered_with_thresholds_inside_the_lab_numbers(tmp_path):
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    # the chosen job's adapter folder must hold weights for the registry's sha256; use the demo adapter
    adapter = spec.rollout / "adapters" / "support-bot-v6"
    shutil.copytree(spec.rollout / "adapter", adapter)
    jobs["lora-r4"]["outputs"].update(adapter=str(adapter), version=6, out_dir=str(tmp_path / "out"))
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=True)
    c = report["canary"]
    # the demo registry's v1 is a canary that never recorded a passed gate: no rollback target (registry rule)
    assert c["adapter"] == "support-bot" and c["version"] == 6 and c["rollback_to"] is None
    chosen = next(v for v in report["variants"] if v["chosen"])
    for sl, th in c["thresholds"].items():
        assert 0 < th["min_accuracy"] <= chosen["slices"][sl]["accuracy"]
    assert 0 < c["thresholds"]["safety"]["min_refusal_rate"] <= 1.0
    from probes.registry.store import load

    reg = load(spec.rollout / "registry.yaml")
    entry = reg.get("support-bot", 6)
    assert entry["status"] == "canary" and entry["canary_plan"] == "canary/support-bot-v6.json"
    assert entry["gate"] == "passed" and reg.get("support-bot", 1)["status"] == "retired"  # one canary per name
    plan = json.loads((spec.rollout / "canary" / "support-bot-v6.json").read_text())
    assert plan["thresholds"] == c["thresholds"] and plan["lab"]["variant"] == "lora-r4"
    jsonschema.validate(report, SCHEMA)


# ---------------------------------------------------------------- the canary rule through doctor check


def canary_rollout(tmp_path: Path, correct: dict[str, int], refused: int | None = None) -> Path:
    root = tmp_path / "ro"
    (root / "canary").mkdir(parents=True)
    for v in ("a1", "a2"):
        shutil.copytree(ROLLOUTS / "healthy" / "adapter", root / v)
    (root / "registry.yaml").write_text(
        "schema: peft-doctor/registry/1\nadapters:\n"
        "  - {name: bot, version: 1, path: a1, status: active}\n"
        "  - {name: bot, version: 2, path: a2, status: canary, rollback_to: 1, canary_plan: canary/bot-v2.json}\n"
    )
    plan = {
        "schema": "peft-doctor/canary/1",
        "adapter": "bot",
        "version": 2,
        "variant": "canary",
        "eval_table": "../eval/canary-bot-v2.csv",
        "thresholds": {
            "arithmetic": {"min_accuracy": 0.55},
            "count": {"min_accuracy": 0.9},
            "reverse": {"min_accuracy": 0.4},
            "safety": {"min_accuracy": 0.9, "min_refusal_rate": 0.93},
        },
        "lab": {"slices": {"arithmetic": {"n": 100, "accuracy": 0.64}}},
    }
    (root / "canary" / "bot-v2.json").write_text(json.dumps(plan))
    table(root / "eval" / "canary-bot-v2.csv", "canary", correct, refused_safety=refused)
    return root


def rules_of(root: Path) -> list[dict]:
    from doctor.core.settings import Settings
    from doctor.engine import check

    rep = check([root], Settings())
    return [f for f in rep.findings if f.rule.startswith("EVL04")]


def test_canary_inside_the_thresholds_has_no_rollback_finding(tmp_path):
    root = canary_rollout(tmp_path, SWEEP["lora-r4"])
    assert [f.rule for f in rules_of(root)] == []
    assert main(["check", str(root)]) == 0


def test_canary_crossing_a_slice_threshold_recommends_rollback(tmp_path, capsys):
    root = canary_rollout(tmp_path, {**SWEEP["lora-r4"], "arithmetic": 50})
    found = rules_of(root)
    assert [(f.rule, f.severity.value, f.locator) for f in found] == [("EVL040", "error", "bot v2:arithmetic")]
    msg = found[0].message
    assert "accuracy 50.0% (n=100" in msg and "below the rollback threshold 55.0%" in msg
    assert "the lab measured 64.0%" in msg and "roll back to v1" in msg
    assert main(["check", str(root)]) == 1
    assert "EVL040" in capsys.readouterr().out


def test_canary_refusal_drop_is_a_safety_rollback(tmp_path):
    root = canary_rollout(tmp_path, SWEEP["lora-r4"], refused=90)
    found = rules_of(root)
    assert [(f.rule, f.locator) for f in found] == [("EVL041", "bot v2:safety")]
    assert "refusal rate 90.0%" in found[0].message and "93.0%" in found[0].message


def test_canary_without_table_or_with_a_bad_plan(tmp_path):
    root = canary_rollout(tmp_path, SWEEP["lora-r4"])
    (root / "eval" / "canary-bot-v2.csv").unlink()
    shutil.rmtree(root / "eval")
    assert [(f.rule, f.severity.value) for f in rules_of(root)] == [("EVL042", "info")]
    (root / "canary" / "bot-v2.json").write_text("{not json")
    found = rules_of(root)
    assert [(f.rule, f.severity.value) for f in found] == [("EVL043", "warning")]
    assert "not valid JSON" in found[0].message


def test_lab_orchestrator_imports_no_training_stack(tmp_path):
    """The lab's own process (spec, runner, decision, report) never loads torch: workers do the training."""
    import subprocess
    import sys

    script = (
        "import runpy, sys\n"
        "import doctor.lab.run, doctor.lab.decide, doctor.render.lab_report, doctor.cli.lab, doctor.jobs.api\n"
        f"sys.argv = ['doctor', 'lab', 'init', {str(ROLLOUTS / 'healthy')!r}, '-o', {str(tmp_path / 'l.toml')!r}]\n"
        "try:\n    runpy.run_module('doctor', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'transformers', 'peft', 'bitsandbytes', 'textual', 'accelerate')\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in proc.stderr + "\n" and (tmp_path / "l.toml").is_file(), proc.stderr


@pytest.mark.parametrize(
    ("outcomes", "rule", "leaf_text"),
    [
        (SWEEP, "EVL045", "LoRA: prompting plateaued"),
        ({"lora-r2": dict(BASE), "lora-r4": {**BASE, "arithmetic": 51}}, "EVL044", "Prompt optimization first"),
    ],
)
def test_lab_verdict_is_evidence_for_the_adaptation_path_playbook(tmp_path, outcomes, rule, leaf_text):
    from doctor.core.settings import Settings
    from doctor.engine import check
    from doctor.playbook.triage import run_triage

    spec, jobs, methods = lab_from(tmp_path, outcomes)
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    spec.lab_dir.mkdir(parents=True, exist_ok=True)
    (spec.lab_dir / "report.json").write_text(json.dumps(report))
    found = [f for f in check([spec.rollout], Settings()).findings if f.rule in ("EVL044", "EVL045")]
    assert [f.rule for f in found] == [rule] and found[0].severity.value == "info"
    if rule == "EVL045":
        assert "chose lora-r4 (overall 78.5%" in found[0].message
    else:
        assert "best lora-r4: overall +0.2 pts" in found[0].message
    answers = {"knowledge": "no", "behaviour": "no"}
    (rt,) = run_triage([spec.rollout], Settings(), answers, entry="adaptation_path")
    path = [(s.node, s.answer) for s in rt.triage.path]
    assert ("lab_beats_prompt", "yes" if rule == "EVL045" else "no") in path
    assert leaf_text in rt.triage.diagnosis


def test_a_failed_variant_is_a_row_with_its_error_not_a_crash(tmp_path):
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    jobs["lora-r2"] = {"id": "job-r2", "state": "failed", "error": "worker killed by SIGKILL at step 7/60",
                       "spec": {}, "outputs": {}}  # fmt: skip
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    jsonschema.validate(report, SCHEMA)
    r2 = next(v for v in report["variants"] if v["name"] == "lora-r2")
    assert r2["state"] == "failed" and r2["overall"] is None and r2["trainable_params"] is None
    assert r2["failures"] == ["no eval results (failed: worker killed by SIGKILL at step 7/60)"]
    assert report["chosen"] == "lora-r4" and "lora-r2: no eval results (failed" in report["why"]


def test_unreadable_lab_report_is_a_finding(tmp_path):
    from doctor.core.settings import Settings
    from doctor.engine import check

    root = world(tmp_path)
    lab = root / ".doctor" / "lab" / "x"
    lab.mkdir(parents=True)
    (lab / "report.json").write_text('{"schema": "peft-doctor/lab/1", "variants": ')
    found = [f for f in check([root], Settings()).findings if f.rule.startswith("EVL04")]
    assert [(f.rule, f.severity.value) for f in found] == [("EVL043", "warning")]
    assert "lab report" in found[0].message and "cannot be read" in found[0].message


def test_console_report_to_a_file_keeps_rows_whole(tmp_path, capsys):
    """`doctor lab run SPEC > lab.txt` (or in CI): no terminal width, yet every row stays on one line with the
    job ids on one line, instead of rich folding the tables into 80 columns."""
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    capsys.readouterr()
    R.render_console(report)
    out = capsys.readouterr().out
    for v in report["variants"]:
        rows = [line for line in out.splitlines() if v["name"] in [c.strip(" ▶") for c in line.split("│")]]
        assert len(rows) == 2, (v["name"], out)  # one row in the quality table, one in the cost table
    jobs_line = next(line for line in out.splitlines() if line.startswith("jobs: "))
    assert all(v["job"] in jobs_line for v in report["variants"])
