"""Rollout checks on what could be compared at all: the baseline, and which examples and slices paired."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.eval_slices import rules as R
from probes.eval_slices.comparison import Comparison
from probes.eval_slices.rules import CHECKS

_ASK = (
    'name it in rollout.toml: [eval] baseline = "<path of the baseline results>" (or [eval] baseline_variant = "NAME")'
)


def _nothing_compared(c: Comparison) -> bool:
    """No baseline was found (a training run's own eval_loss alone is not an eval missing one)."""
    return c.base is None and not c.training_eval_only


@CHECKS(R.BASELINE_MISSING, scope="rollout")
def baseline_missing(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    if not _nothing_compared(c) or c.ambiguous:
        return
    names = c.names
    if c.explicit:
        yield R.BASELINE_MISSING.finding(
            c.where,
            f"baseline variant {c.explicit!r} (from the settings or manifest) is not in the eval tables; "
            f"variants found: {', '.join(names)}",
            locator="baseline",
            severity=Severity.ERROR,
            evidence={"variants": names, "expected": c.explicit},
        )
        return
    yield R.BASELINE_MISSING.finding(
        c.where,
        f"no baseline variant among {', '.join(names)} (expected `base`/`baseline`, a `…-base` folder, "
        f"or [eval] baseline_variant); nothing was compared — {_ASK}",
        locator="baseline",
        evidence={"variants": names, "expected": "base", "by": c.plan.how},
    )


@CHECKS(R.PAIRING_AMBIGUOUS, scope="rollout")
def pairing_ambiguous(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    if not _nothing_compared(c) or not c.ambiguous:
        return
    plan = c.plan
    yield R.PAIRING_AMBIGUOUS.finding(
        c.where,
        f"cannot tell baseline from candidate: {plan.ambiguous} (named by {plan.how}); nothing was compared — {_ASK}",
        locator="baseline",
        evidence=plan.evidence,
    )


@CHECKS(R.UNPAIRED_IDS, scope="rollout")
def unpaired_ids(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """Ids on one side only (or without a usable score on one side); none in common: nothing compared."""
    for r in c.rows:
        if r.aggregate or not r.primary:
            continue
        row, v, b = r.data, r.data["variant"], r.data["baseline"]
        if row["paired"] == 0:
            yield R.UNPAIRED_IDS.finding(
                r.path,
                f"{v} vs {b}: no example id has a usable score on both sides "
                f"({row['only_baseline']} baseline-only, {row['only_candidate']} candidate-only ids); nothing compared",
                locator=f"{v}",
                severity=Severity.ERROR,
                evidence={
                    "paired": 0,
                    "only_baseline": row["only_baseline"],
                    "only_candidate": row["only_candidate"],
                    "examples": row["unpaired_examples"],
                },
            )
        elif row["only_baseline"] or row["only_candidate"] or row["unusable_pairs"]:
            ex = row["unpaired_examples"]
            yield R.UNPAIRED_IDS.finding(
                r.path,
                f"{v} vs {b}: {row['paired']} examples paired; {row['only_baseline']} ids only in the baseline"
                f"{' (e.g. ' + ', '.join(ex['baseline'][:3]) + ')' if ex['baseline'] else ''}, "
                f"{row['only_candidate']} only in the candidate"
                f"{' (e.g. ' + ', '.join(ex['candidate'][:3]) + ')' if ex['candidate'] else ''}"
                + (f", {row['unusable_pairs']} pairs without a usable score" if row["unusable_pairs"] else ""),
                locator=f"{v}",
                evidence={
                    "paired": row["paired"],
                    "only_baseline": row["only_baseline"],
                    "only_candidate": row["only_candidate"],
                    "unusable_pairs": row["unusable_pairs"],
                    "examples": ex,
                },
            )


@CHECKS(R.ONE_SIDED_SLICE, scope="rollout")
def one_sided_slices(c: Comparison, ctx: ProbeContext) -> Iterator[Finding]:
    """Slices (per-example rows) or metrics (aggregate rows) that only one side has."""
    for r in c.rows:
        row, v, b = r.data, r.data["variant"], r.data["baseline"]
        if not r.aggregate and not (r.compared and r.primary):
            continue
        for key, side in (("baseline_only_slices", "baseline"), ("candidate_only_slices", "candidate")):
            if not row[key]:
                continue
            what = f"metric(s) {', '.join(row[key][:10])}" if r.aggregate else f"slice(s) {', '.join(row[key])}"
            yield R.ONE_SIDED_SLICE.finding(
                r.path,
                f"{v} vs {b}: {what} appear only in the {side}; not compared",
                locator=f"{v}:{side}-only",
                evidence={"slices_one_side": row[key], "side": side, **r.common},
            )
