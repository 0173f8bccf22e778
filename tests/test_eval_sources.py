"""Eval results as real tools write them: lm-evaluation-harness results JSON, LLaMA-Factory metrics and
generated predictions — recognised, paired base vs candidate, and compared with the right test."""

from __future__ import annotations

import json
import random
from pathlib import Path

from doctor.core.settings import parse_settings
from doctor.engine import scan
from probes import classify_file
from probes.eval_slices import PROBES


def run(root: Path, settings: dict | None = None):
    return scan([root], parse_settings(settings or {}), probes=PROBES)


def by_rule(rep, rule: str) -> list:
    return [f for f in rep.findings if f.rule == rule]


# ------------------------------------------------------------------------------------- lm-eval results


def _lm_results(path: Path, model_args: str, gsm8k: float, humaneval: float, stderr: bool = True) -> Path:
    """A results file in the v0.4 EvaluationTracker shape: a filtered generation metric with its stderr."""

    def se(p: float, n: int) -> float | str:
        return round((p * (1 - p) / (n - 1)) ** 0.5, 4) if stderr else "N/A"

    data = {
        "results": {
            "gsm8k": {
                "alias": "gsm8k",
                "exact_match,strict-match": gsm8k,
                "exact_match_stderr,strict-match": se(gsm8k, 1319),
                "exact_match,flexible-extract": gsm8k + 0.02,
                "exact_match_stderr,flexible-extract": se(gsm8k + 0.02, 1319),
            },
            "humaneval": {
                "alias": "humaneval",
                "pass@1,create_test": humaneval,
                "pass@1_stderr,create_test": se(humaneval, 164),
            },
        },
        "group_subtasks": {"gsm8k": [], "humaneval": []},
        "configs": {
            "gsm8k": {"task": "gsm8k", "num_fewshot": 5, "filter_list": [{"name": "strict-match"}]},
            "humaneval": {"task": "humaneval", "num_fewshot": 0, "filter_list": [{"name": "create_test"}]},
        },
        "versions": {"gsm8k": 3.0, "humaneval": 1.0},
        "n-shot": {"gsm8k": 5, "humaneval": 0},
        "higher_is_better": {"gsm8k": {"exact_match": True}, "humaneval": {"pass@1": True}},
        "n-samples": {"gsm8k": {"original": 1319, "effective": 1319}, "humaneval": {"original": 164, "effective": 164}},
        "config": {"model": "hf", "model_args": model_args, "batch_size": 8, "bootstrap_iters": 100000},
        "git_hash": "0000000",
        "date": 1767225600.0,
        "model_name": "org/tiny-7b",
        "model_name_sanitized": "org__tiny-7b",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def test_lm_eval_results_pair_by_peft_in_model_args_and_unpaired_z(tmp_path):
    # EvaluationTracker writes both runs into one folder named after `pretrained`; only model_args differ.
    d = tmp_path / "lm_eval" / "org__tiny-7b"
    base = _lm_results(
        d / "results_2026-01-01T10-00-00.000001.json", "pretrained=org/tiny-7b,dtype=bfloat16", 0.45, 0.35
    )
    _lm_results(
        d / "results_2026-01-02T10-00-00.000001.json",
        "pretrained=org/tiny-7b,peft=/ckpt/lora-r8,dtype=bfloat16",
        0.38,
        0.34,
    )
    assert classify_file(base) == "eval_table"
    rep = run(tmp_path)
    reg = by_rule(rep, "EVL001")
    assert [f.locator for f in reg] == [
        "lora-r8:gsm8k:exact_match,flexible-extract",
        "lora-r8:gsm8k:exact_match,strict-match",
    ]
    msg = reg[1].message
    assert "45.0% → 38.0%" in msg and "-7.00 pts" in msg
    assert "unpaired z-test on aggregate ± stderr" in msg and "weaker evidence" in msg
    assert "n=1319 (n-samples effective)" in msg and "minimum detectable effect" in msg
    # pass@1,create_test (-1 pt at n=164) is within noise: compared, not flagged
    row = next(a for a in rep.artifacts if a.facts.get("comparison")).facts["comparison"][0]
    he = next(e for e in row["slices"] if e["metric"] == "pass@1,create_test")
    assert he["status"] in ("ok", "insufficient_samples") and he["p"] > 0.5
    assert row["baseline"] == "base" and row["variant"] == "lora-r8" and "model_args" in row["pairing"]


def test_lm_eval_within_noise_is_clean(tmp_path):
    _lm_results(tmp_path / "base" / "results_2026-01-01T10-00-00.json", "pretrained=m", 0.45, 0.35)
    _lm_results(tmp_path / "lora" / "results_2026-01-01T11-00-00.json", "pretrained=m,peft=lora", 0.445, 0.35)
    rep = run(tmp_path)
    assert not by_rule(rep, "EVL001") and not by_rule(rep, "EVL017") and not by_rule(rep, "EVL006")


def test_lm_eval_without_stderr_binary_metric_uses_binomial_and_says_so(tmp_path):
    _lm_results(tmp_path / "base" / "results_2026-01-01T10-00-00.json", "pretrained=m", 0.45, 0.35, stderr=False)
    _lm_results(
        tmp_path / "lora" / "results_2026-01-01T11-00-00.json", "pretrained=m,peft=lora", 0.38, 0.34, stderr=False
    )
    rep = run(tmp_path)
    assert {f.locator for f in by_rule(rep, "EVL001")} >= {"lora:gsm8k:exact_match,strict-match"}


# --------------------------------------------------------------------------------------- LLaMA-Factory

_WORDS = [
    "the",
    "model",
    "reads",
    "a",
    "short",
    "note",
    "about",
    "river",
    "boats",
    "and",
    "answers",
    "with",
    "one",
    "clear",
    "sentence",
    "each",
    "time",
]


def _sentence(rng: random.Random, k: int = 12) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(k))


def _garble(rng: random.Random, s: str, frac: float) -> str:
    toks = s.split()
    return " ".join(rng.choice(_WORDS) if rng.random() < frac else t for t in toks)


def _lf_run(
    folder: Path, bleu: float, rouge_l: float, labels: list[str] | None = None, noise: float = 0.0, seed: int = 0
):
    """A LLaMA-Factory output_dir after train + do_predict: all_results.json, predict_results.json and
    (when labels are given) generated_predictions.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "predict_bleu-4": bleu,
        "predict_model_preparation_time": 0.0031,
        "predict_rouge-1": rouge_l + 4.0,
        "predict_rouge-2": rouge_l - 12.0,
        "predict_rouge-l": rouge_l,
        "predict_runtime": 61.5,
        "predict_samples_per_second": 3.252,
        "predict_steps_per_second": 0.407,
    }
    (folder / "predict_results.json").write_text(json.dumps(metrics, indent=4))
    (folder / "all_results.json").write_text(
        json.dumps(
            {"epoch": 3.0, "train_loss": 1.21, "train_runtime": 812.4, "total_flos": 1.2e15, **metrics}, indent=4
        )
    )
    if labels is not None:
        rng = random.Random(seed)
        with (folder / "generated_predictions.jsonl").open("w", encoding="utf-8") as fh:
            for i, lab in enumerate(labels):
                pred = _garble(rng, lab, noise)
                fh.write(
                    json.dumps({"prompt": f"user\nQuestion {i}: summarise\nassistant\n", "predict": pred, "label": lab})
                    + "\n"
                )


def test_llama_factory_pair_by_folder_names_without_predictions_is_not_comparable(tmp_path):
    _lf_run(tmp_path / "saves" / "qwen-base", 52.8, 70.3)
    _lf_run(tmp_path / "saves" / "qwen-lora", 45.1, 63.0)
    assert classify_file(tmp_path / "saves" / "qwen-base" / "all_results.json") == "eval_table"
    rep = run(tmp_path)
    nc = by_rule(rep, "EVL018")
    assert len(nc) == 1 and nc[0].locator == "qwen-lora:not-comparable"
    assert "predict · bleu-4 52.80 → 45.10 (-7.70 pts)" in nc[0].message
    assert not by_rule(rep, "EVL001")  # no test could say it, so none claims it


def test_llama_factory_generation_metric_drop_is_a_paired_slice_regression(tmp_path):
    rng = random.Random(7)
    labels = [_sentence(rng) for _ in range(240)]
    _lf_run(tmp_path / "base", 52.8, 70.3, labels, noise=0.15, seed=1)
    _lf_run(tmp_path / "lora", 41.0, 60.2, labels, noise=0.35, seed=2)
    assert classify_file(tmp_path / "lora" / "generated_predictions.jsonl") == "eval_table"
    rep = run(tmp_path)
    reg = by_rule(rep, "EVL001")
    locs = sorted(f.locator for f in reg)
    assert "lora:all" in locs and "lora:all:rouge-l" in locs
    bleu = next(f for f in reg if f.locator == "lora:all")
    assert "metric bleu-4" in bleu.message and "paired z-test on per-example differences" in bleu.message
    assert "n=240 paired" in bleu.message and "sentence BLEU-4" in bleu.message
    # the per-example rows supersede the aggregates: no unpaired duplicate, no "not comparable"
    assert not by_rule(rep, "EVL018")
    scored = by_rule(rep, "EVL019")
    assert scored and "sentence BLEU-4" in scored[0].message and scored[0].severity.value == "info"


def test_llama_factory_generation_within_noise_is_clean(tmp_path):
    rng = random.Random(7)
    labels = [_sentence(rng) for _ in range(240)]
    _lf_run(tmp_path / "base", 52.8, 70.3, labels, noise=0.2, seed=1)
    _lf_run(tmp_path / "lora", 52.5, 70.1, labels, noise=0.2, seed=2)
    rep = run(tmp_path)
    assert not by_rule(rep, "EVL001")
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert {r["metric"] for r in rows} >= {"bleu-4", "rouge-l"}


def test_two_baseline_looking_folders_ask_for_the_manifest_entry(tmp_path):
    _lf_run(tmp_path / "qwen" / "base", 50.0, 70.0)
    _lf_run(tmp_path / "llama" / "base", 40.0, 60.0)
    _lf_run(tmp_path / "qwen" / "lora", 45.0, 65.0)
    rep = run(tmp_path)
    amb = by_rule(rep, "EVL017")
    assert len(amb) == 1 and "qwen/base" in amb[0].message and "llama/base" in amb[0].message
    assert "[eval] baseline" in amb[0].message
    assert not by_rule(rep, "EVL001") and not by_rule(rep, "EVL018")


def test_manifest_names_the_baseline_when_folders_do_not(tmp_path):
    _lf_run(tmp_path / "run-a", 52.8, 70.3)
    _lf_run(tmp_path / "run-b", 45.1, 63.0)
    assert by_rule(run(tmp_path), "EVL006")  # nothing looks like a baseline: said, not guessed
    (tmp_path / "rollout.toml").write_text(
        '[rollout]\nname = "qwen-sft"\n[eval]\nbaseline = "run-a/predict_results.json"\n'
        'candidates = ["run-b/predict_results.json"]\n'
    )
    rep = run(tmp_path)
    nc = by_rule(rep, "EVL018")
    assert nc and "base" in nc[0].message and not by_rule(rep, "EVL006")


def test_comparison_table_api_reads_the_new_sources(tmp_path):
    from probes.eval_slices import comparison_table

    _lm_results(tmp_path / "base" / "results_2026-01-01T10-00-00.json", "pretrained=m", 0.45, 0.35)
    _lm_results(tmp_path / "lora" / "results_2026-01-01T11-00-00.json", "pretrained=m,peft=lora", 0.38, 0.34)
    rows = comparison_table(sorted(tmp_path.rglob("results_*.json")))
    assert len(rows) == 1 and rows[0]["source"] == "aggregate" and rows[0]["variant"] == "lora"
    gsm = next(e for e in rows[0]["slices"] if e["metric"] == "exact_match,strict-match")
    assert gsm["status"] == "regression" and gsm["test"] == "unpaired z-test on aggregate ± stderr"


def test_a_lone_training_run_metrics_file_is_not_an_eval_to_compare(tmp_path):
    run_dir = tmp_path / "output"
    run_dir.mkdir()
    (run_dir / "all_results.json").write_text(
        json.dumps({"epoch": 3.0, "eval_loss": 1.02, "eval_runtime": 3.1, "train_loss": 1.3, "train_runtime": 90.0})
    )
    rep = run(tmp_path)
    assert [a.kind for a in rep.artifacts] == ["eval_table"] and not rep.findings
    assert rep.artifacts[0].facts["splits"] == {"eval": {"loss": 1.02}}


def test_lm_eval_group_aggregates_are_compared(tmp_path):
    for name, args, acc in (("base", "pretrained=m", 0.62), ("lora", "pretrained=m,peft=lora", 0.55)):
        p = _lm_results(tmp_path / name / "results_2026-01-01T10-00-00.json", args, 0.45, 0.35)
        data = json.loads(p.read_text())
        data["groups"] = {"mmlu": {"alias": "mmlu", "acc,none": acc, "acc_stderr,none": 0.004}}
        p.write_text(json.dumps(data))
    rep = run(tmp_path)
    assert "lora:mmlu:acc,none" in {f.locator for f in by_rule(rep, "EVL001")}


def test_an_exact_base_name_wins_over_other_base_like_names(tmp_path):
    # base + prompt_only + lora (a rollout evaluating two baselines): `base` stays the baseline, as before
    _lf_run(tmp_path / "base", 52.8, 70.3)
    _lf_run(tmp_path / "prompt_only", 50.0, 68.0)
    _lf_run(tmp_path / "lora", 45.1, 63.0)
    rep = run(tmp_path)
    assert not by_rule(rep, "EVL017")
    rows = [r for a in rep.artifacts for r in a.facts.get("comparison", [])]
    assert {r["baseline"] for r in rows} == {"base"} and {r["variant"] for r in rows} == {"lora", "prompt_only"}
