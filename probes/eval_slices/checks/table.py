"""Checks on one eval table as read (artifact scope): the problems its reader recorded, its own numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from doctor.core.rules import Rule
from probes.eval_slices import rules as R
from probes.eval_slices.rules import CHECKS

if TYPE_CHECKING:
    from probes.eval_slices.evaltable import EvalTable, Problem

# Which rule a reader's problem (its structured `kind`) is; a kind not listed is an unreadable table.
PROBLEM_RULE = {
    "missing_columns": R.MALFORMED,
    "bad_lines": R.MALFORMED,
    "duplicate_ids": R.DUPLICATE_IDS,
    "bad_scores": R.BAD_SCORES,
    "mixed_types": R.BAD_SCORES,
    "empty_slice": R.EMPTY_SLICE,
}


@dataclass
class TableReview:
    """The artifact subject: the artifact's path (findings name it as discovered) and its loaded table."""

    path: Path
    table: EvalTable


def _problem_findings(review: TableReview, rule: Rule) -> Iterator[Finding]:
    for p in review.table.problems:
        if PROBLEM_RULE.get(p.kind, R.MALFORMED) is rule:
            yield _finding_for(rule, p, review.path)


def _finding_for(rule: Rule, problem: Problem, path: Path) -> Finding:
    # lines skipped in a table that was otherwise read: a warning, the rest is analysed
    sev = Severity.WARNING if problem.kind == "bad_lines" else None
    return rule.finding(
        path, f"{path.name}: {problem.message}", locator=problem.locator, evidence=problem.evidence, severity=sev
    )


# Registered in the order the readers record their problems (bad lines, score types, scores, slices,
# duplicates), so a table's findings keep the order they had.
@CHECKS(R.MALFORMED, scope="artifact")
def malformed(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    return _problem_findings(review, R.MALFORMED)


@CHECKS(R.BAD_SCORES, scope="artifact")
def bad_scores(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    return _problem_findings(review, R.BAD_SCORES)


@CHECKS(R.EMPTY_SLICE, scope="artifact")
def empty_slices(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    return _problem_findings(review, R.EMPTY_SLICE)


@CHECKS(R.DUPLICATE_IDS, scope="artifact")
def duplicate_ids(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    return _problem_findings(review, R.DUPLICATE_IDS)


@CHECKS(R.SUMMARY_MISMATCH, scope="artifact")
def summary_mismatch(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    """A summary's stated number vs the one its embedded rows give."""
    path = review.path
    tol = float(ctx.param(R.SUMMARY_MISMATCH, "tolerance"))
    for c in review.table.claims:
        div = c.get("scale") or 1.0
        gap = abs(c["stated"] - c["computed"]) / div
        if gap > tol:
            yield R.SUMMARY_MISMATCH.finding(
                path,
                f"{path.name}: {c['variant']} states {c['what']} = {c['stated']:.4g}, but the "
                f"{c['how']} it holds give {c['computed']:.4g} (gap {gap * 100:.1f} pts > "
                f"{tol * 100:.1f}); doctor compares the rows, not the stated field",
                locator=c["locator"],
                evidence=c,
            )


@CHECKS(R.SCORED_BY_DOCTOR, scope="artifact")
def scored_by_doctor(review: TableReview, ctx: ProbeContext) -> Iterator[Finding]:
    table, path = review.table, review.path
    if table.scored_by and table.usable:
        yield R.SCORED_BY_DOCTOR.finding(
            path,
            f"{path.name}: {table.rows} rows have no score column; doctor scored them with "
            f"{table.scored_by} (metrics: {', '.join([table.metric, *table.metrics])})",
            locator="score",
            evidence={"scored_by": table.scored_by, "metrics": [table.metric, *table.metrics]},
        )
