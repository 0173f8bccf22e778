"""Helpers for the TUI tests (no tests here): synthetic rollouts, screen text, waiting for workers."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

from doctor.core.model import Finding, Report, Severity


def write_unstable_run(folder: Path, steps: int = 120) -> Path:
    """A trainer_log.jsonl whose loss spikes at step 60 and goes NaN from step 100 (grad norm explodes)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(1, steps + 1):
        loss = 2.0 * math.exp(-s / 30) + 0.4 + 0.02 * math.sin(s)
        grad = 0.8 + 0.05 * math.cos(s)
        if s == 60:
            loss, grad = 6.0, 40.0
        if s >= 100:
            loss, grad = float("nan"), float("inf")
        lines.append(
            json.dumps(
                {"current_steps": s, "total_steps": steps, "loss": loss, "grad_norm": grad, "learning_rate": 2e-4}
            )
        )
    path = folder / "trainer_log.jsonl"
    path.write_text("\n".join(lines).replace("NaN", "NaN").replace("Infinity", "Infinity") + "\n")
    return path


def write_clean_run(folder: Path, steps: int = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "current_steps": s,
                "total_steps": steps,
                "loss": 2.0 * math.exp(-s / 40) + 0.5 + 0.01 * math.sin(s),
                "grad_norm": 0.5 + 0.02 * math.cos(s),
                "learning_rate": 1e-4,
            }
        )
        for s in range(1, steps + 1)
    ]
    path = folder / "trainer_log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_world(root: Path) -> Path:
    """Two rollouts: `unstable` (spike, NaN, gradient explosion) and `clean` (nothing wrong, so the
    playbook ends at a question for the user)."""
    write_unstable_run(root / "unstable")
    write_clean_run(root / "clean")
    return root


def synthetic_report(n: int, root: Path | None = None) -> Report:
    """A report with n findings spread over 50 files, three severities and 40 rules."""
    root = root or Path("/synthetic")
    sevs = (Severity.ERROR, Severity.WARNING, Severity.INFO)
    findings = [
        Finding(
            rule=f"TRN{(i % 40) + 1:03d}",
            severity=sevs[i % 3],
            title=f"synthetic finding number {i}",
            message=f"value {i * 0.37:.3f} above threshold",
            path=root / f"run{i % 50:02d}" / "trainer_log.jsonl",
            locator=f"step {i}",
            symptoms=("loss_spike",) if i % 2 else ("non_finite",),
        )
        for i in range(n)
    ]
    return Report(targets=[root], artifacts=[], findings=findings)


def screen_text(app) -> str:
    """The current screen as plain text (what a user sees, without colours)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def settle(pilot, timeout: float = 30.0) -> None:
    """Wait for running workers and the messages they posted."""
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while time.monotonic() < deadline:
        busy = [w for w in pilot.app.workers if w.is_running and w.group not in ("jobs-poll", "watch")]
        if not busy:
            break
        await asyncio.sleep(0.02)
    # Screens reveal content with call_after_refresh (e.g. scrolling the job action into view): let
    # several refresh cycles and any scheduled animation finish before a snapshot is taken.
    for _ in range(3):
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.05)


async def wait_for(pilot, predicate, timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause()
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()
