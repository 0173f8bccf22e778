"""Eval-slice probes: paired per-slice regressions with real statistics, safety, coverage and the release gate.

`comparison_table(rollout_or_tables)` and `to_markdown(table)` are the API the markdown reporter and
`doctor inspect` call. numpy loads only when a rollout has an eval table; pyarrow only for big or
Parquet tables; pandas never.
"""

from probes.eval_slices.probe import PROBES, comparison_table, to_markdown
from probes.eval_slices.rules import RULES

__all__ = ["PROBES", "RULES", "comparison_table", "to_markdown"]
