"""Eval-slice probes: paired per-slice regressions with real statistics, safety, coverage and the release gate.

`comparison_table(report)` (the comparisons a scan published on `Report.derived`, or a fresh one from
eval-table paths) and `to_markdown(table)` are the API the markdown reporter calls. numpy loads only
when a rollout has an eval table; pyarrow only for big or Parquet tables; pandas never.
"""

from typing import Any

from doctor.core.probe import LazyProbe, lazy_attr
from probes.eval_slices.formats import CLASSIFIERS
from probes.eval_slices.rules import CHECKS, RULES

PROBES = [
    LazyProbe(
        "eval_slices",
        {"eval_table"},
        "probes.eval_slices.probe:EvalSlicesProbe",
        rollout_kinds={"eval_table", "manifest"},
    ),
    # canary rollback thresholds and lab verdicts written by `doctor lab` (probes/eval_slices/canary.py)
    LazyProbe("eval_canary", set(), "probes.eval_slices.canary:CanaryProbe", rollout_kinds={"registry", "manifest"}),
]


def __getattr__(name: str) -> Any:
    return lazy_attr(__name__, {"comparison_table": "probe", "to_markdown": "probe"}, name)


__all__ = ["CHECKS", "CLASSIFIERS", "PROBES", "RULES", "comparison_table", "to_markdown"]
