"""Discover → probe each artifact → probe each rollout → filter (disabled, ignored, baseline) → Report."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from doctor.core.checks import DOC_CHECKS, unreadable_finding
from doctor.core.discovery import discover
from doctor.core.manifest import read_manifest
from doctor.core.model import Artifact, Finding, Report, Severity, display_path
from doctor.core.probe import Probe, ProbeContext, ReadError, Rollout
from doctor.core.rules import DOC_NOTHING_FOUND, DOC_PROBE_CRASHED, DOC_SUPPRESSION_EXPIRED
from doctor.core.session import ScanSession
from doctor.core.settings import Settings
from probes import classifiers, load_probes

Progress = Callable[[str, int, int], None]


class UsageError(Exception):
    """A problem with how doctor was called (missing path…): exit 2 with this message."""


def read_error_finding(err: ReadError) -> Finding:
    return unreadable_finding(err.path, err.reason, err.where)


def _run_probe(
    fn: Callable[..., Iterable[Finding]], args: tuple, path: Path, probe: Probe, session: ScanSession
) -> list[Finding]:
    """One probe call, with the DOC findings it deferred (skipped lines, paths not followed) after its own."""
    got = _call_probe(fn, args, path, probe)
    return got + session.drain()


@DOC_CHECKS(DOC_PROBE_CRASHED, scope="scan")
def _call_probe(fn: Callable[..., Iterable[Finding]], args: tuple, path: Path, probe: Probe) -> list[Finding]:
    """Run one probe call; a crash becomes a finding naming the file and the reason, never a traceback."""
    try:
        return list(fn(*args))
    except ReadError as err:
        return [read_error_finding(err)]
    except OSError as exc:  # the file system refused a path the input named (too long, a loop, …): input, not a bug
        named = os.fsdecode(exc.filename) if exc.filename is not None else ""
        shown = named if len(named) <= 80 else named[:60] + "…" + named[-16:]
        reason = exc.strerror or type(exc).__name__
        said = f"cannot access {shown!r}: {reason}" if shown else reason
        return [unreadable_finding(path, said, evidence={"reason": reason, "probe": probe.name})]
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return [
            DOC_PROBE_CRASHED.finding(
                path,
                f"probe {probe.name} failed on {path.name}: {type(exc).__name__}: {exc}",
                evidence={
                    "probe": probe.name,
                    "error": type(exc).__name__,
                    "at": f"{Path(frame.filename).name}:{frame.lineno}",
                },
            )
        ]


def group_rollouts(artifacts: list[Artifact], default_root: Path) -> list[Rollout]:
    by_root: dict[Path, Rollout] = {}
    for a in artifacts:
        root = a.rollout or default_root
        by_root.setdefault(root, Rollout(root)).artifacts.append(a)
    return list(by_root.values())


def scan(
    targets: list[Path],
    settings: Settings,
    *,
    progress: Progress | None = None,
    cancelled: Any = None,
    probes: list[Probe] | None = None,
) -> Report:
    """Run every probe over the targets and return the unfiltered report."""
    t0 = time.perf_counter()
    for t in targets:
        if not t.exists():
            raise UsageError(f"{t}: no such file or directory")
    probes = load_probes() if probes is None else probes
    session = ScanSession(cancelled)
    artifacts: list[Artifact] = []
    findings: list[Finding] = []
    rollouts: list[Rollout] = []
    for t in targets:
        found = discover(t, classifiers())  # each family says which files are its formats
        findings.extend(nothing_found(t, found))
        artifacts.extend(found)
        rollouts.extend(group_rollouts(found, t.resolve() if t.is_dir() else t.resolve().parent))
    timings: dict[str, float] = {"discover": time.perf_counter() - t0}
    passed: dict[str, list[str]] = {}
    total = len(artifacts) + len(rollouts)
    done = 0

    for rollout in rollouts:
        if session.is_cancelled():
            break  # a cancelled scan stops here: no further artifacts, no rollout-level probes
        ctx = ProbeContext(settings=settings, rollout=rollout, session=session)
        for manifest in rollout.of_kind("manifest"):
            try:
                rollout.manifest = read_manifest(manifest.path)
                manifest.facts.update(rollout.manifest)
            except ReadError as err:
                findings.append(read_error_finding(err))
        for artifact in rollout.artifacts:
            if session.is_cancelled():
                break
            for probe in probes:
                if artifact.kind not in probe.kinds:
                    continue
                t1 = time.perf_counter()
                got = _run_probe(probe.check, (artifact, ctx), artifact.path, probe, session)
                timings[probe.name] = timings.get(probe.name, 0.0) + time.perf_counter() - t1
                findings.extend(got)
                if not got:
                    passed.setdefault(str(artifact.path), []).append(probe.name)
            done += 1
            if progress:
                progress(str(artifact.path), done, total)
        if session.is_cancelled():
            break
        for probe in probes:
            t1 = time.perf_counter()
            findings.extend(_run_probe(probe.check_rollout, (rollout, ctx), rollout.root, probe, session))
            timings[probe.name] = timings.get(probe.name, 0.0) + time.perf_counter() - t1
        done += 1
        if progress:
            progress(str(rollout.root), done, total)

    timings["total"] = time.perf_counter() - t0
    return Report(
        targets=targets, artifacts=artifacts, findings=findings, timings=timings, passed=passed, derived=session.derived
    )


@DOC_CHECKS(DOC_NOTHING_FOUND, scope="scan")
def nothing_found(target: Path, found: list[Artifact]) -> list[Finding]:
    if found:
        return []
    return [
        DOC_NOTHING_FOUND.finding(
            target.resolve(),
            f"{target}: no training log, adapter, eval table, serving config, registry or manifest found",
        )
    ]


@DOC_CHECKS(DOC_SUPPRESSION_EXPIRED, scope="scan")
def expired_ignore(settings: Settings, i: int) -> Finding:
    ig = settings.ignores[i]
    return DOC_SUPPRESSION_EXPIRED.finding(
        settings.source, f"ignore for {ig.rule} ({ig.reason!r}) expired on {ig.expires}", locator=f"ignore[{i}]"
    )


def apply_filters(report: Report, settings: Settings, baseline: set[str] | None = None) -> Report:
    """Drop disabled rules, ignored findings (with reasons) and baseline fingerprints; sort the rest."""
    kept: list[Finding] = []
    suppressed = 0
    expired_seen: set[int] = set()
    for f in report.findings:
        if f.rule in settings.disable:
            suppressed += 1
            continue
        shown = display_path(f.path)
        matched = [i for i, ig in enumerate(settings.ignores) if ig.matches(f.rule, shown, f.locator)]
        active = [i for i in matched if not settings.ignores[i].expired()]
        if active:
            suppressed += 1
            continue
        for i in matched:
            if i not in expired_seen:
                expired_seen.add(i)
                kept.append(expired_ignore(settings, i))
        if baseline and f.fingerprint(shown) in baseline:
            suppressed += 1
            continue
        kept.append(f)
    kept.sort(key=lambda f: (-f.severity.rank, display_path(f.path), f.rule, f.locator))
    report.findings = kept
    report.suppressed = suppressed
    report.fail_on = settings.fail_on
    return report


def check(
    targets: list[Path],
    settings: Settings,
    *,
    baseline: set[str] | None = None,
    progress: Progress | None = None,
    cancelled: Any = None,
) -> Report:
    return apply_filters(scan(targets, settings, progress=progress, cancelled=cancelled), settings, baseline)


def worst(findings: Iterable[Finding]) -> Severity | None:
    best: Severity | None = None
    for f in findings:
        if best is None or f.severity.rank > best.rank:
            best = f.severity
    return best
