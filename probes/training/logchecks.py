"""The TRN checks: one per rule, on a prepared `LogSubject` (scope "artifact").

Most rules are raised by detections: `detections_check(RULE, *kinds)` registers the check that turns the
detections of those kinds into the rule's findings — the one place a detection kind is mapped to a rule.
The reader's problems (skipped entries, steps out of order) and a run too short to judge have checks of
their own. File-level problems are not findings of this family: the probe hands them to `ctx.unreadable`
(DOC001); `unreadable_findings` builds the same findings for `doctor watch`, which runs without a scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from doctor.core.checks import CheckFn, unreadable_finding
from doctor.core.model import Finding
from doctor.core.rules import DOC_UNREADABLE, Rule
from probes.training.detection import Kind
from probes.training.logsubject import LogSubject
from probes.training.rules import (
    CHECKS,
    DIVERGENCE,
    GRAD_EXPLOSION,
    LOG_RULES,
    LOSS_SPIKE,
    LR_SCHEDULE,
    LR_TOO_HIGH,
    MANY_EPOCHS,
    NON_FINITE,
    NOT_LEARNING,
    OVERFITTING,
    PARTLY_UNREADABLE,
    PREF_ACC_SATURATED,
    PREF_CHOSEN_FALLING,
    PREF_DEGENERATE,
    RL_KL_BLOWUP,
    RL_REWARD_COLLAPSE,
    STEP_ORDER,
    TOO_SHORT,
)

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext

LOG_RULE_IDS = frozenset(r.id for r in LOG_RULES)


def is_log_rule(rule: Rule) -> bool:
    return rule.id in LOG_RULE_IDS


def run_log_checks(subject: LogSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """Every TRN check on one run: the reader's problems, the too-short note, then the detections in detector
    order (`in_log_order` interleaves the reader's problems as it met them, for `doctor watch`)."""
    return CHECKS.run("artifact", subject, ctx, applies=is_log_rule)


# ------------------------------------------------------------------ what the reader met


@CHECKS(STEP_ORDER, scope="artifact")
def steps_out_of_order(subject: LogSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """TRN011: negative steps, steps that repeat or go backwards (the reader kept the latest value)."""
    out = []
    for p in subject.problems("order"):
        more = f" ({p.count} times)" if p.count > 1 else ""
        out.append(STEP_ORDER.finding(subject.path, p.text + more, locator=p.locator))
    return out


@CHECKS(PARTLY_UNREADABLE, scope="artifact")
def entries_skipped(subject: LogSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """TRN010: entries the reader could not use; the rest of the log was analysed."""
    out = []
    for p in subject.problems("entry"):
        more = f" ({p.count} times)" if p.count > 1 else ""
        out.append(
            PARTLY_UNREADABLE.finding(
                subject.path,
                f"{p.text}{more}; the rest of the log was analysed",
                locator=p.locator,
                evidence={"count": p.count},
            )
        )
    return out


@CHECKS(TOO_SHORT, scope="artifact")
def too_short(subject: LogSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """TRN009: fewer finite loss points than the history-based detectors need. An RL log without any loss
    (its signal is the reward/KL series) is not 'too short'."""
    s, n_loss = subject.series, subject.finite_loss_points
    rl_only = subject.family == "rl" and bool(getattr(s, "extra", None))
    if not len(s) or n_loss >= subject.min_points or (rl_only and n_loss == 0):
        return []
    return [
        TOO_SHORT.finding(
            subject.path,
            f"only {n_loss} finite loss points logged (need {subject.min_points}); "
            "spike/divergence/plateau checks skipped",
            locator="",
            evidence={"points": n_loss},
        )
    ]


# ------------------------------------------------------------------ detections → rules


def _kinds_taken() -> set[Kind]:
    return {k for c in CHECKS for k in getattr(c.fn, "kinds", ())}


def detections_check(rule: Rule, *kinds: Kind) -> CheckFn:
    """Register `rule`'s check: its findings are the subject's detections of `kinds`."""
    taken = sorted(k.value for k in set(kinds) & _kinds_taken())
    if taken:
        raise ValueError(f"detection kinds {taken} already belong to another rule")

    def check(subject: LogSubject, ctx: ProbeContext | None = None) -> list[Finding]:
        return [subject.finding(rule, det) for det in subject.of(kinds)]

    check.__name__ = check.__qualname__ = f"{rule.id.lower()}_from_{'_'.join(k.value for k in kinds)}"
    check.__doc__ = f"{rule.id} ({rule.title}): detections of kind {', '.join(k.value for k in kinds)}."
    check.kinds = kinds  # type: ignore[attr-defined]
    return CHECKS(rule, scope="artifact")(check)


# Registered in the order the detectors run, so one run's findings come out in detector order.
detections_check(NON_FINITE, Kind.NON_FINITE, Kind.EVAL_NON_FINITE)
detections_check(LOSS_SPIKE, Kind.LOSS_SPIKE, Kind.SHORT_SPIKE)
detections_check(DIVERGENCE, Kind.DIVERGENCE, Kind.SHORT_RISE, Kind.SHORT_JUMP)
detections_check(NOT_LEARNING, Kind.LOSS_ZERO, Kind.LOSS_FLAT, Kind.LOSS_FROZEN, Kind.LOSS_NEVER_BELOW)
detections_check(GRAD_EXPLOSION, Kind.GRAD_SPIKE, Kind.GRAD_GROWTH, Kind.GRAD_OVER_CLIP)
detections_check(OVERFITTING, Kind.EVAL_RISE, Kind.EVAL_RISE_STREAK)
detections_check(MANY_EPOCHS, Kind.MANY_EPOCHS)
detections_check(PREF_DEGENERATE, Kind.PREF_DEGENERATE)
detections_check(PREF_CHOSEN_FALLING, Kind.PREF_CHOSEN_FALLING)
detections_check(PREF_ACC_SATURATED, Kind.PREF_ACC_SATURATED)
detections_check(RL_KL_BLOWUP, Kind.RL_KL_BLOWUP)
detections_check(RL_REWARD_COLLAPSE, Kind.RL_REWARD_COLLAPSE)
detections_check(LR_TOO_HIGH, Kind.LR_PEAK_HIGH)
detections_check(LR_SCHEDULE, Kind.LR_ALL_ZERO, Kind.LR_STUCK_ZERO, Kind.LR_NO_WARMUP, Kind.LR_NO_DECAY)

# Read-only: which rule a detection kind is raised under (the detection bench labels detections with it).
RULE_OF_KIND: Mapping[Kind, Rule] = MappingProxyType({k: c.rule for c in CHECKS for k in getattr(c.fn, "kinds", ())})
if len(RULE_OF_KIND) != len(Kind):  # a new detector kind must be given to a rule here
    raise RuntimeError(f"detection kinds without a rule: {sorted(k.value for k in Kind if k not in RULE_OF_KIND)}")


# ------------------------------------------------------------------ file-level problems (not a TRN rule)


def unreadable_findings(subject: LogSubject) -> list[Finding]:
    """DOC001 for the reader's file-level problems, as `ctx.unreadable` makes them (for `doctor watch`)."""
    return [unreadable_finding(p.path or subject.path, p.text, locator=p.locator) for p in subject.problems("doc")]


def report_unreadable(subject: LogSubject, ctx: ProbeContext) -> None:
    """Hand the reader's file-level problems to the scan (DOC001, drained by the engine)."""
    for p in subject.problems("doc"):
        ctx.unreadable(p.path or subject.path, p.text, locator=p.locator)


def in_log_order(subject: LogSubject, found: list[Finding]) -> list[Finding]:
    """Findings from the reader's problems in the order it met them (DOC001, TRN010 and TRN011
    interleaved), ahead of the rest, which keep their order."""
    kind_of = {DOC_UNREADABLE.id: "doc", PARTLY_UNREADABLE.id: "entry", STEP_ORDER.id: "order"}
    rank = {}
    for i, p in enumerate(subject.series.problems):
        rank.setdefault((p.kind if p.kind in ("doc", "order") else "entry", p.locator), i)
    last = len(subject.series.problems)
    return sorted(found, key=lambda f: rank.get((kind_of.get(f.rule, ""), f.locator), last))
