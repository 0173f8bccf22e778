"""One reader per eval-output format, all producing an `EvalTable` (probes/eval_slices/evaltable.py).

Formats: `delimited` (CSV/TSV), `jsonl`, `parquet` (plain id/slice/score tables), `lm_eval`,
`llama_factory`, `judge`, `predictions`, `summary`; `columns` normalizes a per-example table's columns
and `records` reads the keyed records judge/predictions share. Per-example tables (rows with an id, a
slice and a score) are compared paired; aggregate-only files (`EvalTable.aggregates`) with the unpaired
test in aggregate.py. The dispatch is by file name first, then by a peek at the content, the same
signatures probes/eval_slices/formats.py gives discovery to find the files. Format modules load only when read (this
package imports none of them, nor numpy, at import time; none of them imports this package).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from doctor.core.probe import ReadError

if TYPE_CHECKING:
    from probes.eval_slices.evaltable import EvalTable


def read_table(path: Path, default_variant: str | None = None) -> EvalTable:
    """Read one eval file. `default_variant` names rows that carry no variant column."""
    from probes.eval_slices.readers import judge, llama_factory, lm_eval, predictions, summary
    from probes.eval_slices.readers.records import first_keys

    low = path.name.lower()
    try:
        path.stat()
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    if lm_eval.is_results(path):
        return _named(lm_eval.read_results(path), default_variant)
    if llama_factory.is_results(path):
        return _named(llama_factory.read_results(path), default_variant)
    if low == llama_factory.PREDICTIONS:
        return llama_factory.read_predictions(path, default_variant)
    if low.endswith(".jsonl") and lm_eval.is_samples(path):
        return lm_eval.read_samples(path, default_variant)
    if low.endswith(".json"):
        return _named(summary.read(path), default_variant)
    if low.endswith((".jsonl", ".csv", ".tsv")):
        keys = first_keys(path)
        if judge.looks_like(keys):
            return judge.read(path, default_variant)
        if predictions.looks_like(keys):
            return predictions.read(path, default_variant)
    return _per_example(path, default_variant or path.stem)


def _per_example(path: Path, variant: str) -> EvalTable:
    """CSV/TSV/JSONL/Parquet per-example tables with id, slice and score columns."""
    low = path.name.lower()
    if low.endswith((".csv", ".tsv")):
        from probes.eval_slices.readers import delimited

        return delimited.read(path, variant)
    if low.endswith(".jsonl"):
        from probes.eval_slices.readers import jsonl

        return jsonl.read(path, variant)
    if low.endswith(".parquet"):
        from probes.eval_slices.readers import parquet

        return parquet.read(path, variant)
    raise ReadError(path, "not an eval table format doctor reads (csv, tsv, jsonl, parquet, lm-eval json)")


def _named(table: EvalTable, default_variant: str | None) -> EvalTable:
    """An aggregate file the manifest names as the baseline takes the baseline's name (a file holding
    several named runs keeps its names)."""
    if default_variant and len(table.variants) <= 1:
        table.variants = [default_variant]
        table.named_from = "manifest"
    return table
