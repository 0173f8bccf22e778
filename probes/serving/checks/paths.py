"""Paths a serving config writes that doctor does not follow or cannot check, and adapters not on disk.

SRV019 and SRV020 arise in both phases: a config's own references (a compose build Dockerfile, a
`--config` file) when it is read, the base model and the adapter routes when the rollout is resolved.
"""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.serving import rules as R
from probes.serving.rules import CHECKS
from probes.serving.subjects import ConfigSubject, ServingRollout


@CHECKS(R.OUTSIDE_ROOT, scope=("artifact", "rollout"))
def outside_rollout(subject: ConfigSubject | ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    if isinstance(subject, ConfigSubject):
        yield from subject.noted("outside", R.OUTSIDE_ROOT)
        return
    root = subject.rollout.root
    for s in subject.served:
        yield from (n.finding(R.OUTSIDE_ROOT) for n in s.base.notes if n.kind == "outside")
        for r in s.routes:
            if r.res.status == "outside":
                loc = f"{s.server.name}: {r.ref.name}"
                yield R.OUTSIDE_ROOT.finding(
                    s.artifact.path,
                    f"{loc}: adapter path {r.ref.target!r} resolves to {r.res.path} outside the rollout {root}; "
                    "not followed",
                    locator=loc,
                    evidence={"path": r.ref.target},
                    line=r.ref.line,
                )


@CHECKS(R.CANNOT_VERIFY, scope=("artifact", "rollout"))
def cannot_verify(subject: ConfigSubject | ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    if isinstance(subject, ConfigSubject):
        yield from subject.noted("cannot_follow", R.CANNOT_VERIFY)
        return
    for s in subject.served:
        yield from (n.finding(R.CANNOT_VERIFY) for n in s.base.notes if n.kind == "cannot_follow")
        for r in s.routes:
            if r.res.status in ("container", "hub"):
                what = "exists only inside the container" if r.res.status == "container" else "looks like a hub id"
                loc = f"{s.server.name}: {r.ref.name}"
                yield R.CANNOT_VERIFY.finding(
                    s.artifact.path,
                    f"{loc}: {r.ref.target!r} {what}; adapter checks skipped",
                    locator=loc,
                    evidence={"path": r.ref.target},
                    line=r.ref.line,
                )
    if subject.served:
        return
    for art in subject.routers:  # a routing layer with no server config in the rollout to check it against
        for route in art.facts["routes"]:
            yield R.CANNOT_VERIFY.finding(
                art.path,
                f"route {route['name']!r} → {route['model']!r}: no server config in the rollout to check it against",
                locator=f"model_list: {route['name']}",
                evidence={k: route[k] for k in ("name", "model", "provider", "api_base")},
                line=route["line"],
            )


@CHECKS(R.ADAPTER_NOT_FOUND, scope="rollout")
def adapter_not_found(subject: ServingRollout, ctx: ProbeContext) -> Iterator[Finding]:
    for s in subject.served:
        for r in s.routes:
            if r.missing is not None:
                loc = f"{s.server.name}: {r.ref.name}"
                yield R.ADAPTER_NOT_FOUND.finding(
                    s.artifact.path,
                    f"{loc}: {r.missing}",
                    locator=loc,
                    evidence={"path": r.ref.target, "resolved": str(r.res.path)},
                    line=r.ref.line,
                )
