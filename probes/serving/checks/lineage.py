"""The adapter's training tokenizer, chat template and EOS against what its server tokenizes and stops with
(detectors in probes.serving.tokenizer; the lineage is worked out once per route for all four rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from doctor.core.rules import Rule
from probes.common.targets import resolve_target
from probes.serving import rules as R
from probes.serving import tokenizer as tok
from probes.serving.rules import CHECKS
from probes.serving.subjects import Pair, ServingRollout


def lineage_of(subject: ServingRollout, pair: Pair, ctx: ProbeContext) -> tok.Lineage | None:
    """The served tokenizer is the server's --tokenizer when it names one, else the base model folder."""
    key = id(pair)
    if key not in subject.lineages:
        served_folder = pair.base.folder
        if pair.server.tokenizer:
            res = resolve_target(pair.server.tokenizer, pair.server, subject.rollout, ctx, pair.artifact.path.parent)
            ok = res.status == "ok" and res.path is not None and res.path.is_dir()
            served_folder = res.path if ok else None
        subject.lineages[key] = tok.lineage(pair.folder, served_folder, pair.base.config, pair.info, ctx)
    return subject.lineages[key]


def _each(
    subject: ServingRollout, ctx: ProbeContext, rule: Rule, detect: Callable[[tok.Lineage], tok.Got]
) -> Iterator[Finding]:
    for pair in subject.pairs:
        lin = lineage_of(subject, pair, ctx)
        got = detect(lin) if lin is not None else None
        if got is not None:
            msg, ev = got
            yield pair.finding(rule, f"{pair.name}: {msg}", ev)


@CHECKS(R.TOKENIZER_VOCAB, scope="rollout")
def tokenizer_vocabulary(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(subject, ctx, R.TOKENIZER_VOCAB, tok.vocab_gap)


@CHECKS(R.CHAT_TEMPLATE, scope="rollout")
def chat_template(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(subject, ctx, R.CHAT_TEMPLATE, tok.template_gap)


@CHECKS(R.EOS_MISMATCH, scope="rollout")
def eos_mismatch(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(subject, ctx, R.EOS_MISMATCH, tok.eos_gap)


@CHECKS(R.UNTRAINED_TOKENS, scope="rollout")
def untrained_special_tokens(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    return _each(subject, ctx, R.UNTRAINED_TOKENS, tok.untrained_tokens)
