"""The eval-slice checks, one per rule (registered on `probes.eval_slices.rules.CHECKS`).

- table.py: one eval table (artifact scope): unreadable parts, duplicate ids, bad scores, empty slices,
  rows doctor scored, a summary disagreeing with its own rows.
- pairing.py, slices.py, safety.py, gate.py, coverage.py: the rollout's comparison (`comparison.Comparison`,
  rollout scope): baseline and pairing, per-slice regressions, refusals, the release gate, training coverage.
"""

# Importing the package registers every check (the probe imports it).
from probes.eval_slices.checks import coverage, gate, pairing, safety, slices, table

__all__ = ["coverage", "gate", "pairing", "safety", "slices", "table"]
