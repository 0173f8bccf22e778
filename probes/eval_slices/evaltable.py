"""The normalized eval table every reader produces (probes/eval_slices/readers/), and its read problems.

An `EvalTable` holds integer codes (ids, slices, variants) and float arrays (score, refused, latency),
so pairing a million rows is array arithmetic. Problems that do not stop the read (bad scores,
duplicate ids, empty slices, mixed types) are recorded as `problems` and become findings; the
remaining rows are still analysed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Problem:
    kind: str  # missing_columns | duplicate_ids | bad_scores | empty_slice | mixed_types | bad_lines
    message: str
    locator: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    fatal: bool = False


@dataclass
class EvalTable:
    path: Path
    fmt: str
    columns: list[str] = field(default_factory=list)
    rows: int = 0
    id_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ids: Any = field(default_factory=list)  # uniques (code -> id): list of str or a pyarrow string array
    slice_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slices: list[str] = field(default_factory=list)
    variant_codes: np.ndarray | None = None
    variants: list[str] = field(default_factory=list)  # uniques; a single name when from the file name
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # refused, latency_ms, vram_mb, throughput
    problems: list[Problem] = field(default_factory=list)
    aggregate: dict[str, Any] | None = None  # facts of an aggregate-only file (no per-example rows)
    aggregates: list[Any] = field(default_factory=list)  # AggMetric (probes.eval_slices.aggregate)
    line_offset: int = 2  # row i is on line i + line_offset (CSV header), 1 for JSONL
    metric: str = "score"  # name of `score`: the file's column or metric (`acc,none`, `bleu-4`, ...)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # further per-row metrics (0..1), by name
    scored_by: str = ""  # how doctor scored rows that came without a score ("" = the file's own scores)
    named_from: str = "file"  # where the variant name came from: column | file (renamed by pairing)
    hint: dict[str, Any] = field(default_factory=dict)  # model / pretrained / peft the file records
    link: str = ""  # run key shared by files of one run (lm-eval timestamp), for pairing
    covers: set[tuple[str, str]] = field(default_factory=set)  # (task, metric) aggregates these rows supersede
    groupings: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)  # more slice columns
    metric_scales: dict[str, float] = field(default_factory=dict)  # a metric's own range (judge 1..10 → 10)
    claims: list[dict[str, Any]] = field(default_factory=list)  # stated vs recomputed numbers (summaries)

    @property
    def usable(self) -> bool:
        return self.aggregate is None and not any(p.fatal for p in self.problems)

    @property
    def is_aggregate(self) -> bool:
        return self.aggregate is not None and not any(p.fatal for p in self.problems)

    def with_metric(self, name: str) -> EvalTable:
        """The same rows scored by another of the file's metrics (arrays shared, not copied)."""
        from dataclasses import replace

        return replace(self, score=self.metrics[name], metric=name)

    def with_grouping(self, name: str) -> EvalTable:
        """The same rows sliced by another slice column (`difficulty=hard`)."""
        from dataclasses import replace

        codes, names = self.groupings[name]
        return replace(self, slice_codes=codes, slices=names)

    def variant_of_rows(self) -> list[tuple[str, np.ndarray | None]]:
        """(variant name, row mask or None for all rows) for every variant in the file."""
        if self.variant_codes is None:
            return [(self.variants[0], None)]
        return [(name, self.variant_codes == i) for i, name in enumerate(self.variants)]


def id_at(ids: Any, i: int) -> str:
    v = ids[i]
    return str(v.as_py()) if hasattr(v, "as_py") else str(v)
