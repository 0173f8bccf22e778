"""Discover → probe each artifact → probe each rollout → filter (disabled, ignored, baseline) → Report."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from doctor.config import Settings
from doctor.discover import discover
from doctor.manifest import read_manifest
from doctor.model import Artifact, Finding, Report, Severity, display_path
from doctor.probe import Probe, ProbeContext, ReadError, Rollout
from doctor.rules import DOC_NOTHING_FOUND, DOC_PROBE_CRASHED, DOC_SUPPRESSION_EXPIRED, DOC_UNREADABLE
from probes import load_probes

Progress = Callable[[str, int, int], None]


class UsageError(Exception):
    """A problem with how doctor was called (missing path…): exit 2 with this message."""


def read_error_finding(err: ReadError) -> Finding:
    where = f" at {err.where}" if err.where else ""
    return DOC_UNREADABLE.finding(
        err.path, f"{err.path.name}: {err.reason}{where}", locator=err.where, evidence={"reason": err.reason}
    )


def _run_probe(fn: Callable[..., Iterable[Finding]], args: tuple, path: Path, probe: Probe) -> list[Finding]:
    """Run one probe call; a crash becomes a finding naming the file and the reason, never a traceback."""
    try:
        return list(fn(*args))
    except ReadError as err:
        return [read_error_finding(err)]
    except OSError as exc:  # the file system refused a path the input named (too long, a loop, …): input, not a bug
        named = os.fsdecode(exc.filename) if exc.filename is not None else ""
        shown = named if len(named) <= 80 else named[:60] + "…" + named[-16:]
        reason = exc.strerror or type(exc).__name__
        return [
            DOC_UNREADABLE.finding(
                path,
                f"{path.name}: cannot access {shown!r}: {reason}" if shown else f"{path.name}: {reason}",
                evidence={"reason": reason, "probe": probe.name},
            )
        ]
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
    artifacts: list[Artifact] = []
    findings: list[Finding] = []
    rollouts: list[Rollout] = []
    for t in targets:
        found = discover(t)
        if not found:
            findings.append(
                DOC_NOTHING_FOUND.finding(
                    t.resolve(),
                    f"{t}: no training log, adapter, eval table, serving config, registry or manifest found",
                )
            )
        artifacts.extend(found)
        rollouts.extend(group_rollouts(found, t.resolve() if t.is_dir() else t.resolve().parent))
    timings: dict[str, float] = {"discover": time.perf_counter() - t0}
    passed: dict[str, list[str]] = {}
    total = len(artifacts) + len(rollouts)
    done = 0

    for rollout in rollouts:
        ctx = ProbeContext(settings=settings, rollout=rollout, cancelled=cancelled)
        for manifest in rollout.of_kind("manifest"):
            try:
                rollout.manifest = read_manifest(manifest.path)
                manifest.facts.update(rollout.manifest)
            except ReadError as err:
                findings.append(read_error_finding(err))
        for artifact in rollout.artifacts:
            if cancelled is not None and cancelled.is_set():
                break
            for probe in probes:
                if artifact.kind not in probe.kinds:
                    continue
                t1 = time.perf_counter()
                got = _run_probe(probe.check, (artifact, ctx), artifact.path, probe)
                timings[probe.name] = timings.get(probe.name, 0.0) + time.perf_counter() - t1
                findings.extend(got)
                if not got:
                    passed.setdefault(str(artifact.path), []).append(probe.name)
            done += 1
            if progress:
                progress(str(artifact.path), done, total)
        for probe in probes:
            t1 = time.perf_counter()
            findings.extend(_run_probe(probe.check_rollout, (rollout, ctx), rollout.root, probe))
            timings[probe.name] = timings.get(probe.name, 0.0) + time.perf_counter() - t1
        done += 1
        if progress:
            progress(str(rollout.root), done, total)

    timings["total"] = time.perf_counter() - t0
    return Report(targets=targets, artifacts=artifacts, findings=findings, timings=timings, passed=passed)


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
                ig = settings.ignores[i]
                kept.append(
                    DOC_SUPPRESSION_EXPIRED.finding(
                        settings.source,
                        f"ignore for {ig.rule} ({ig.reason!r}) expired on {ig.expires}",
                        locator=f"ignore[{i}]",
                    )
                )
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
