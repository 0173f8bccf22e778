"""Per-example predictions with targets but no score column (`{"id", "domain", "prompt", "target",
"prediction"}` and the like). doctor scores each row with the metric the file names — a `metric`
field / column (`exact_match`, `contains`, `f1`) — else exact match after normalisation, and says which.
"""

from __future__ import annotations

from pathlib import Path

from probes.eval_slices import scoring
from probes.eval_slices.evaltable import EvalTable, Problem
from probes.eval_slices.readers.columns import SCORE_COLS
from probes.eval_slices.readers.records import build, pick, record_keys, records

PRED_KEYS = (
    "prediction",
    "predicted",
    "pred",
    "model_output",
    "model_answer",
    "generated",
    "generation",
    "completion",
    "response",
    "output",
    "predict",
)
TARGET_KEYS = (
    "target",
    "reference",
    "references",
    "gold",
    "gold_answer",
    "answer",
    "label",
    "expected",
    "ground_truth",
    "correct_answer",
)


def _contains(pred: object, target: object) -> float:
    targets = target if isinstance(target, list) else [target]
    p = scoring.normalise(pred)
    return float(any(scoring.normalise(t) and scoring.normalise(t) in p for t in targets))


def _f1(pred: object, target: object) -> float:
    targets = target if isinstance(target, list) else [target]
    p = scoring.normalise(pred).split()
    return max(
        scoring._f1(sum((_bag(p) & _bag(t)).values()), len(p), len(t))
        for t in (scoring.normalise(x).split() for x in targets)
    )


def _bag(toks: list[str]):
    from collections import Counter

    return Counter(toks)


SCORERS = {
    "exact_match": (scoring.exact_match, scoring.EXACT_MATCH_HOW),
    "em": (scoring.exact_match, scoring.EXACT_MATCH_HOW),
    "contains": (_contains, "normalised target contained in the normalised prediction"),
    "includes": (_contains, "normalised target contained in the normalised prediction"),
    "f1": (_f1, "token F1 between normalised prediction and target (SQuAD)"),
}


def looks_like(keys: list[str]) -> bool:
    """A prediction and a target column, and no score column of its own."""
    import difflib

    low = {k.lower() for k in keys}
    if low & set(SCORE_COLS) or low & {"score", "scores", "rating"}:
        return False
    if any(difflib.get_close_matches(k, [*SCORE_COLS, "rating"], n=1, cutoff=0.75) for k in low):
        return False  # a misspelt score column (`scor`) is a broken scored table, not one to re-score
    # `output` alone is an eval set's reference answer; a prediction file also needs a target column
    return (
        bool(low & set(PRED_KEYS)) and bool(low & set(TARGET_KEYS)) and _pred_key(list(low)) != _target_key(list(low))
    )


def _pred_key(keys: list[str]) -> str | None:
    return pick(keys, PRED_KEYS)


def _target_key(keys: list[str]) -> str | None:
    return pick(keys, TARGET_KEYS)


def read(path: Path, default_variant: str | None) -> EvalTable:
    table = EvalTable(path, "predictions")
    rows = records(path, table)
    keys = record_keys(rows)
    pk, tk = _pred_key(keys), _target_key(keys)
    if pk is None or tk is None or pk == tk:
        table.problems.append(
            Problem(
                "missing_columns", "no prediction and target columns to score", "header", {"columns": keys}, fatal=True
            )
        )
        return table
    mk = pick(keys, ("metric", "scorer", "metric_name"))
    named = {str(o.get(mk)).strip().lower() for _, o in rows if o.get(mk)} if mk else set()
    unknown = sorted(named - set(SCORERS))
    if unknown:
        table.problems.append(
            Problem(
                "bad_scores",
                f"metric(s) {', '.join(unknown)} named in column {mk!r} are not ones doctor can score; "
                "those rows were scored by exact match after normalisation",
                mk or "",
                {"unknown_metrics": unknown},
            )
        )
    used: set[str] = set()
    score = []
    for _, o in rows:
        name = str(o.get(mk) or "exact_match").strip().lower() if mk else "exact_match"
        fn, how = SCORERS.get(name, SCORERS["exact_match"])
        used.add(how)
        pred, tgt = o.get(pk), o.get(tk)
        score.append(None if pred is None or tgt is None else fn(pred, tgt))
    table = build(table, rows, keys, score, default_variant or path.stem, output_key=pk)
    names = sorted({n for n in named if n in SCORERS} or {"exact_match"})
    table.metric = names[0] if len(names) == 1 else "mixed: " + ", ".join(names)
    table.scored_by = "; ".join(sorted(used)) + f" (prediction column {pk!r}, target column {tk!r})"
    return table
