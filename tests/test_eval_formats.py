"""Judge outputs, unscored predictions, summary JSON and linked lm-eval samples: each recognised,
paired and compared with the right test; suspicious results said."""

from __future__ import annotations

import json
import random
from pathlib import Path

from doctor.core.settings import parse_settings
from doctor.engine import scan
from probes import classify_file
from probes.eval_slices import PROBES, to_markdown


def run(root: Path):
    return scan([root], parse_settings({}), probes=PROBES)


def by_rule(rep, rule: str) -> list:
    return [f for f in rep.findings if f.rule == rule]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------------ judge files


def _judge_rows(model: str, coding_drop: float, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(240):
        cat = ("coding", "writing", "math")[i % 3]
        diff = ("easy", "hard")[i % 2]
        corr = min(5, max(1, round(rng.gauss(4.0, 0.7))))
        if model == "lora" and cat == "coding" and rng.random() < coding_drop:
            corr = max(1, corr - 2)
        rows.append(
            {
                "id": f"q{i:03d}",
                "category": cat,
                "difficulty": diff,
                "model": model,
                "response": "def f(): ...",
                "judge_model": "gpt-4o-2024-08-06",
                "scores": {"correctness": corr, "helpfulness": min(5, max(1, round(rng.gauss(4.2, 0.6))))},
                "rationale": "The answer is mostly right.",
            }
        )
    return rows


def test_judge_rubric_file_with_slices_is_paired_on_graded_means(tmp_path):
    rng = random.Random(3)
    rows = _judge_rows("base", 0, rng) + _judge_rows("lora", 0.8, random.Random(3))
    path = _jsonl(tmp_path / "eval" / "judgments.jsonl", rows)
    assert classify_file(path) == "eval_table"
    rep = run(tmp_path)
    reg = by_rule(rep, "EVL001")
    locs = sorted(f.locator for f in reg)
    assert "lora:coding:correctness" in locs  # the dimension that dropped, on the slice where it did
    f = next(f for f in reg if f.locator == "lora:coding:correctness")
    assert "metric correctness" in f.message and "/5 →" in f.message
    assert "paired z-test on per-example differences" in f.message and "n=80 paired" in f.message
    assert not any(":helpfulness" in loc for loc in locs)  # unchanged dimension stays clean
    rows_ = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert {r["grouping"] for r in rows_} >= {None, "difficulty"}  # the second slice column is compared too
    assert any(s["slice"] == "difficulty=hard" for r in rows_ for s in r["slices"])


def test_mt_bench_judgments_with_failed_ratings(tmp_path):
    rng = random.Random(5)
    rows = []
    for model, shift in (("llama-7b-chat-base", 0.0), ("llama-7b-chat-lora", -1.5)):
        for q in range(81, 161):
            for turn in (1, 2):
                score = min(10, max(1, round(rng.gauss(7 + shift, 1.2))))
                if q == 90 and turn == 2:
                    score = -1  # FastChat: no [[rating]] in the judgment
                rows.append(
                    {
                        "question_id": q,
                        "model": model,
                        "judge": ["gpt-4", "single-v1"],
                        "user_prompt": "[Instruction] ...",
                        "judgment": f"... Rating: [[{score}]]",
                        "score": score,
                        "turn": turn,
                        "tstamp": 1687221234.5,
                    }
                )
    _jsonl(tmp_path / "model_judgment" / "gpt-4_single.jsonl", rows)
    rep = run(tmp_path)
    bad = by_rule(rep, "EVL012")
    assert bad and "without a usable rating" in bad[0].message
    reg = by_rule(rep, "EVL001")
    assert len(reg) == 1 and reg[0].locator == "llama-7b-chat-lora:all"
    assert "/10 →" in reg[0].message and "n=159 paired" in reg[0].message  # both lost q90 turn 2
    assert "(-1.6" in reg[0].message


# --------------------------------------------------------------------------------- unscored predictions


def _pred_rows(drop_geo: int) -> list[dict]:
    rows = []
    for i in range(300):
        dom = ("geography", "history", "science")[i % 3]
        target = f"answer {i}"
        ok = i % 10 != 0
        if dom == "geography" and i < 3 * drop_geo:
            ok = False
        pred = f"The  Answer {i}." if ok else f"answer {i + 1}"  # articles, case, punctuation normalised away
        rows.append({"id": f"ex{i}", "domain": dom, "prompt": f"Q{i}?", "target": target, "prediction": pred})
    return rows


def test_predictions_without_score_are_scored_by_normalised_exact_match(tmp_path):
    _jsonl(tmp_path / "base" / "predictions.jsonl", _pred_rows(0))
    path = _jsonl(tmp_path / "lora" / "predictions.jsonl", _pred_rows(40))
    assert classify_file(path) == "eval_table"
    rep = run(tmp_path)
    scored = by_rule(rep, "EVL019")
    assert len(scored) == 2 and "exact match after lowercasing and removing punctuation" in scored[0].message
    reg = by_rule(rep, "EVL001")
    assert [f.locator for f in reg] == ["lora:geography"]
    assert "McNemar exact test (paired)" in reg[0].message and "90.0% →" in reg[0].message
    assert "rows scored by doctor: exact match" in reg[0].message


def test_predictions_within_noise_stay_clean(tmp_path):
    _jsonl(tmp_path / "eval-base" / "predictions.jsonl", _pred_rows(0))
    _jsonl(tmp_path / "eval-lora" / "predictions.jsonl", _pred_rows(1))
    rep = run(tmp_path)
    assert not by_rule(rep, "EVL001") and not by_rule(rep, "EVL006")
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert rows and rows[0]["baseline"] == "eval-base" and rows[0]["metric"] == "exact_match"


# ------------------------------------------------------------------------------------------- summaries


def _summary_run(name: str, math_acc: float, overall: float, n_math: int = 200) -> dict:
    return {
        "model": name,
        "n": n_math + 200,
        "metrics": {"accuracy": overall},
        "slices": {
            "math": {"accuracy": math_acc, "n": n_math},
            "reading": {"accuracy": 0.80, "n": 200},
        },
    }


def test_summary_runs_compared_unpaired_and_stale_field_flagged(tmp_path):
    data = {
        "runs": [
            _summary_run("base", 0.70, 0.75),
            _summary_run("lora-r16", 0.55, 0.76),  # stated overall disagrees with its own slice rows (0.675)
        ]
    }
    path = tmp_path / "eval_summary.json"
    path.write_text(json.dumps(data, indent=2))
    assert classify_file(path) == "eval_table"
    rep = run(tmp_path)
    mm = by_rule(rep, "EVL021")
    assert len(mm) == 1 and "lora-r16 states metrics.accuracy = 0.76" in mm[0].message and "0.675" in mm[0].message
    reg = by_rule(rep, "EVL001")
    assert [f.locator for f in reg] == ["lora-r16:math:accuracy"]
    assert "unpaired z-test" in reg[0].message and "70.0% → 55.0%" in reg[0].message and "n=200" in reg[0].message


def test_summary_n_too_small_for_the_claimed_difference(tmp_path):
    data = [_summary_run("base", 0.60, 0.70, n_math=20), _summary_run("lora", 0.75, 0.775, n_math=20)]
    (tmp_path / "summary.json").write_text(json.dumps(data))
    rep = run(tmp_path)
    small = [f for f in by_rule(rep, "EVL007") if f.locator == "lora:math:accuracy"]
    assert small and "+15.00 pts" in small[0].message and "cannot be judged" in small[0].message
    assert not by_rule(rep, "EVL001")


def test_summary_with_items_is_paired_and_perfect_small_set_is_suspicious(tmp_path):
    def items(perfect: bool) -> list[dict]:
        return [{"id": f"i{k}", "slice": ("a", "b")[k % 2], "correct": 1 if perfect or k % 4 else 0} for k in range(60)]

    data = [
        {"model": "base", "metrics": {"accuracy": 0.75}, "items": items(False)},
        {"adapter": "lora", "metrics": {"accuracy": 1.0}, "items": items(True)},
    ]
    (tmp_path / "summary.json").write_text(json.dumps(data))
    rep = run(tmp_path)
    sus = by_rule(rep, "EVL020")
    assert len(sus) == 1 and "100% on all 2 slice(s) of a 60-example set" in sus[0].message
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert rows and rows[0]["source"] == "per_example" and rows[0]["paired"] == 60
    assert not by_rule(rep, "EVL021")  # the stated accuracies match their items


# ----------------------------------------------------------------------------- lm-eval linked samples


def _lm_run(folder: Path, ts: str, peft: str | None, passed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    args = "pretrained=org/coder-1b" + (f",peft={peft}" if peft else "")
    p = passed / 164
    res = {
        "results": {
            "humaneval": {
                "alias": "humaneval",
                "pass@1,create_test": p,
                "pass@1_stderr,create_test": (p * (1 - p) / 163) ** 0.5,
            }
        },
        "configs": {"humaneval": {"task": "humaneval"}},
        "versions": {"humaneval": 1.0},
        "n-shot": {"humaneval": 0},
        "higher_is_better": {"humaneval": {"pass@1": True}},
        "n-samples": {"humaneval": {"original": 164, "effective": 164}},
        "config": {"model": "hf", "model_args": args},
    }
    (folder / f"results_{ts}.json").write_text(json.dumps(res))
    lines = [
        {
            "doc_id": i,
            "doc": {"task_id": f"HumanEval/{i}"},
            "target": "check(f)",
            "arguments": {"gen_args_0": {"arg_0": "def f():", "arg_1": {}}},
            "resps": [["  return 1"]],
            "filtered_resps": [["def f():\n  return 1"]],
            "filter": "create_test",
            "metrics": ["pass@1"],
            "doc_hash": "h",
            "prompt_hash": "p",
            "target_hash": "t",
            "pass@1": float(i < passed),
        }
        for i in range(164)
    ]
    _jsonl(folder / f"samples_humaneval_{ts}.jsonl", lines)


def test_lm_eval_samples_linked_to_results_get_the_paired_test(tmp_path):
    d = tmp_path / "out" / "org__coder-1b"
    _lm_run(d, "2026-02-01T09-00-00.000001", None, 80)
    _lm_run(d, "2026-02-02T09-00-00.000001", "/adapters/coder-lora", 56)
    rep = run(tmp_path)
    reg = by_rule(rep, "EVL001")
    assert [f.locator for f in reg] == ["coder-lora:humaneval"]
    assert "McNemar exact test (paired)" in reg[0].message and "metric pass@1,create_test" in reg[0].message
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert all(r["source"] == "per_example" for r in rows)  # the aggregate is superseded, not tested twice


def test_tui_plot_and_markdown_show_aggregate_sources(tmp_path):
    from doctor.tui.widgets.plots import plot_kind, slices_plot

    data = {"runs": [_summary_run("base", 0.70, 0.75), _summary_run("lora", 0.55, 0.675)]}
    (tmp_path / "summary.json").write_text(json.dumps(data))
    rep = run(tmp_path)
    f = by_rule(rep, "EVL001")[0]
    assert plot_kind(f.evidence) == "slices"
    assert "math · accur" in slices_plot(f.evidence["slices"], 80, 16)
    md = to_markdown([r for a in rep.artifacts for r in a.facts.get("comparison", [])])
    assert "unpaired z-test on aggregate ± stderr" in md and "| math · accuracy | 200 | 70.0 | 55.0 |" in md


def test_one_run_per_file_summaries_pair_by_folder(tmp_path):
    # both files name the same base model; the folders say which is which
    for name, math in (("base", 0.70), ("lora", 0.55)):
        d = tmp_path / "eval" / name
        d.mkdir(parents=True)
        run_ = _summary_run("Qwen2-7B", math, (math * 200 + 160) / 400)
        (d / "metrics.json").write_text(json.dumps(run_))
    rep = run(tmp_path)
    assert sorted(f.locator for f in by_rule(rep, "EVL001")) == ["lora:math:accuracy", "lora:overall:accuracy"]


def test_lower_is_better_metrics_regress_upwards(tmp_path):
    def run_(name: str, loss: float, ppl: float) -> dict:
        return {
            "model": name,
            "metrics": {"eval_loss": {"value": loss, "stderr": 0.01}, "perplexity": {"value": ppl, "stderr": 0.05}},
        }

    (tmp_path / "summary.json").write_text(json.dumps([run_("base", 1.20, 3.32), run_("lora", 1.35, 3.10)]))
    rep = run(tmp_path)
    assert [f.locator for f in by_rule(rep, "EVL001")] == ["lora:overall:eval_loss"]  # loss up = worse
    row = next(r for a in rep.artifacts for r in a.facts.get("comparison", []))
    ppl = next(e for e in row["slices"] if e["metric"] == "perplexity")
    assert ppl["higher_is_better"] is False and ppl["status"] == "improvement"


def test_summary_items_without_ids_pair_by_position(tmp_path):
    data = [
        {"model": "base", "metrics": {"accuracy": 0.9}, "items": [{"correct": int(k % 10 != 0)} for k in range(200)]},
        {"model": "lora", "metrics": {"accuracy": 0.6}, "items": [{"correct": int(k % 10 < 6)} for k in range(200)]},
    ]
    (tmp_path / "summary.json").write_text(json.dumps(data))
    rep = run(tmp_path)
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert rows[0]["paired"] == 200 and rows[0]["only_baseline"] == 0
    assert [f.locator for f in by_rule(rep, "EVL001")] == ["lora:overall"]
