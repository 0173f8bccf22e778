"""Routes that load without an error and answer like the base model (detectors in probes.serving.noop).

Run on the served routes only: the matrix's verdict is about loading, these about what comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from doctor.core.rules import Rule
from probes.serving import noop
from probes.serving import rules as R
from probes.serving.rules import CHECKS
from probes.serving.subjects import Pair, ServingRollout


def _each(subject: ServingRollout, rule: Rule, detect: Callable[[Pair], tuple | None]) -> Iterator[Finding]:
    for pair in subject.pairs:
        got = detect(pair)
        if got is not None:
            _, msg, ev = got  # (the detector's rule, message, evidence)
            yield pair.finding(rule, f"{pair.name}: {msg}", ev)


@CHECKS(R.NAMES_MATCH_NO_MODULE, scope="rollout")
def names_match_no_module(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(
        subject,
        R.NAMES_MATCH_NO_MODULE,
        lambda p: noop.name_mismatch(p.info, p.base.folder, p.base.config, ctx) if p.base.folder is not None else None,
    )


@CHECKS(R.TARGETS_NOT_APPLIED, scope="rollout")
def targets_not_applied(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(
        subject, R.TARGETS_NOT_APPLIED, lambda p: noop.not_applied(p.server.lora_target_modules, p.label, p.info)
    )


@CHECKS(R.ZERO_B, scope="rollout")
def zero_lora_b(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(subject, R.ZERO_B, lambda p: noop.zero_b(p.folder, p.info.weights))
