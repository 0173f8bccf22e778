"""Rollout check on training coverage: eval slices the training data never contained (EVL005)."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.manifest import resolve
from doctor.core.model import Finding
from doctor.core.probe import ProbeContext, Rollout
from doctor.core.safeio import loads_json
from probes.eval_slices import rules as R
from probes.eval_slices.comparison import Comparison
from probes.eval_slices.fmt import pts
from probes.eval_slices.rules import CHECKS


def train_slices(rollout: Rollout) -> tuple[set[str] | None, str]:
    """The slices the adapter was trained on, and where that was read (None: not known)."""
    data = rollout.manifest.get("data", {}) if rollout.manifest else {}
    if not isinstance(data, dict):
        return None, ""
    ts = data.get("train_slices")
    if isinstance(ts, list) and ts:
        return {str(s) for s in ts}, "manifest [data] train_slices"
    train = resolve(rollout.root, data.get("train"))
    if train is not None and train.is_file() and train.suffix == ".jsonl":
        found: set[str] = set()
        with train.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"slice"' not in line:
                    continue
                try:
                    obj = loads_json(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("slice") is not None:
                    found.add(str(obj["slice"]))
        if found:
            return found, f"slice labels of {train.name}"
    return None, ""


@CHECKS(R.NARROW_COVERAGE, scope="rollout")
def narrow_coverage(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    if c.base is None:
        return
    trained, src = train_slices(c.rollout)
    if trained is None:
        return
    # each candidate's own scores and slices (paired or not), else every slice a per-example table has
    table = [r.data for r in c.rows if not r.aggregate and r.primary]
    slices = {s for t in c.tables if t.usable for s in t.slices}
    evald = sorted({s["slice"] for row in table for s in row["slices"]} or slices)
    absent = [s for s in evald if s not in trained]
    if not absent:
        return
    deltas: dict[str, dict[str, float | None]] = {}
    for row in table:
        for s in row["slices"]:
            if s["slice"] in absent:
                deltas.setdefault(s["slice"], {})[row["variant"]] = s["delta"]
    detail = "; ".join(f"{s}: " + ", ".join(f"{v} {pts(d)}" for v, d in deltas.get(s, {}).items()) for s in absent)
    yield R.NARROW_COVERAGE.finding(
        c.where,
        f"{len(absent)} of {len(evald)} eval slices are absent from the training data ({src}: "
        f"{', '.join(sorted(trained))}): {detail}",
        locator="coverage",
        evidence={
            "absent": absent,
            "trained": sorted(trained),
            "evaluated": evald,
            "source": src,
            "deltas": deltas,
        },
    )
