"""Which files are eval tables and eval sets (asked by doctor.core.discovery): the signatures of the formats
probes/eval_slices/readers/ reads (lm-eval, LLaMA-Factory, judge, predictions, summary JSON, slice tables).

Light on purpose: imported on every `doctor check` start-up, so names and a 16 KiB peek only (no parser);
pyarrow only for a Parquet schema, when a Parquet file is there.
"""

from __future__ import annotations

import re
from pathlib import Path

from doctor.core.discovery import Classifier, Evidence, FilePeek

# an eval metric (not only timing) in a Trainer metrics dict: "eval_loss", "predict_bleu-4", …
_EVAL_METRIC_KEY = re.compile(
    r'"(?:eval|predict|test)_(?!runtime"|samples_per_second"|steps_per_second"|samples"|model_preparation_time")'
    r'[\w@.\-]+"\s*:\s*-?[\d.]'
)
_TRAINER_METRICS = ("all_results.json", "eval_results.json", "predict_results.json", "test_results.json")
_SCORE_COLS = {"score", "correct", "acc", "exact_match"}
_JUDGE_COLS = {"judge", "judgment", "judgement", "judge_model", "feedback", "rationale", "critique"}
_RATING_COLS = {"score", "scores", "rating", "ratings", "rubric"}
_PRED_COLS = {"prediction", "predicted", "pred", "model_output", "model_answer", "generated", "completion", "output"}
_TARGET_COLS = {"target", "reference", "gold", "gold_answer", "answer", "label", "expected", "ground_truth"}
_PROMPT_COLS = {"prompt", "instruction", "input", "question"}
_SUMMARY_NAME = re.compile(r'"(?:model|adapter|variant|run|model_name)"\s*:\s*"')
_SUMMARY_METRICS = re.compile(r'"metrics"\s*:\s*\{')
_NOT_SUMMARIES = ("config", "adapter_config", "tokenizer", "generation_config")  # model-folder JSON


def classify_file(path: Path, peek: FilePeek) -> str | None:
    low = path.name.lower()
    if low == "generated_predictions.jsonl" and '"predict"' in peek.text(4096):
        return "eval_table"  # LLaMA-Factory do_predict output: prompt / predict / label per line
    if low.endswith((".csv", ".tsv", ".jsonl", ".parquet")):
        return _classify_table(low, peek)
    if low.endswith(".json") and low.startswith("results"):
        text = peek.text(4096)
        if '"results"' in text and ('"config"' in text or '"versions"' in text):
            return "eval_table"  # lm-evaluation-harness results JSON
    if low.endswith(".json") and not low.startswith(_NOT_SUMMARIES):
        text = peek.text()
        if _SUMMARY_METRICS.search(text) and _SUMMARY_NAME.search(text):
            return "eval_table"  # a summary of eval runs: model/adapter names with metrics dicts
    if low in _TRAINER_METRICS and _EVAL_METRIC_KEY.search(peek.text(4096)):
        return "eval_table"  # HF Trainer / LLaMA-Factory metrics with eval_* / predict_* scores
    return None


def _classify_table(low: str, peek: FilePeek) -> str | None:
    if low.startswith("samples_") and low.endswith(".jsonl") and '"doc_id"' in peek.text(4096):
        return "eval_table"  # lm-evaluation-harness per-sample output (first line may exceed the peek)
    cols = peek.columns
    if "slice" in cols and (_SCORE_COLS & cols):
        return "eval_table"
    if {"doc_id", "filter"} <= cols or ("doc_id" in cols and "target" in cols):
        return "eval_table"  # lm-evaluation-harness per-sample output
    if (_JUDGE_COLS & cols) and (_RATING_COLS & cols):
        return "eval_table"  # per-item LLM-judge output (MT-Bench judgments, rubric scores)
    if (_PRED_COLS & cols) and (_TARGET_COLS & cols) and not (_SCORE_COLS & cols):
        return "eval_table"  # per-example predictions with targets and no score: doctor scores them
    if "slice" in cols and (_PROMPT_COLS & cols):
        return "eval_set"
    return None


CLASSIFIERS = (Classifier(Evidence.SIGNATURE, file=classify_file),)
