"""Pilot tests of the TUI lab screen: the comparison table with the chosen variant marked, the three plots,
the decision and canary lines; a running lab shows its variants' job states; no lab says how to run one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.lab import run as L
from doctor.tui import make_app

sys.path.insert(0, str(Path(__file__).parent))
from test_lab import SWEEP, lab_from
from test_tui_support import screen_text, settle, wait_for

from doctor.tui.widgets.plot_view import PlotView

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lab_world(tmp_path: Path) -> Path:
    spec, jobs, methods = lab_from(tmp_path, SWEEP)
    report = L.assemble(spec, jobs, methods, None, spec.eval_set, 0.0, register=False)
    spec.lab_dir.mkdir(parents=True, exist_ok=True)
    (spec.lab_dir / "report.json").write_text(json.dumps(report))
    return spec.rollout


def _cells(app) -> list[list[str]]:
    from textual.widgets import DataTable

    t = app.screen.query_one("#lab-table", DataTable)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


async def test_lab_screen_shows_table_plots_and_decision(tmp_path: Path):
    root = lab_world(tmp_path)
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        assert await wait_for(pilot, lambda: app.screen.id == "lab" and len(_cells(app)) == 5)
        rows = _cells(app)
        assert [r[0].strip() for r in rows] == ["prompt_only", "lora-r2", "▶ lora-r4", "lora-r8", "qlora-r4"]
        r4 = rows[2]
        assert r4[2] == "78.5" and r4[-1] == "meets" and r4[5] == "32,768"  # overall %, target, params
        assert rows[1][-1] == "no" and rows[0][-1] == "baseline" and rows[0][5] == "–"
        quality = app.screen.query_one("#lab-quality", PlotView).plain
        assert "overall % vs rank" in quality and "★" in quality
        assert "peak MiB vs rank (process_peak_rss)" in app.screen.query_one("#lab-memory", PlotView).plain
        assert "p50 ms: base, unmerged, merged" in app.screen.query_one("#lab-latency", PlotView).plain
        text = screen_text(app)
        assert "chosen: lora-r4" in text and "Why: lora-r4 is the smallest rank" in text
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: app.screen.id == "overview")


async def test_running_lab_shows_variant_progress(tmp_path: Path):
    root = lab_world(tmp_path)
    lab = root / ".doctor" / "lab" / "healthy-lab"
    from doctor.jobs.store import JobStore

    store = JobStore(root)
    job = store.create({"kind": "retrain", "rollout": str(root)})
    store.set_state(job.id, "running")
    store.update(job.id, step=30, max_steps=60)
    (lab / "state.json").write_text(json.dumps({"variants": {"lora-r8": {"job": job.id}, "lora-r16": {}}}))
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        assert await wait_for(pilot, lambda: app.screen.id == "lab" and len(_cells(app)) == 2)
        rows = _cells(app)
        assert rows[0][0].strip() == "lora-r8" and rows[0][-1] == "running 30/60"
        assert rows[1][-1].strip() == "queued"
        assert "running: 0/2 variants done" in screen_text(app)


async def test_no_lab_says_how_to_run_one(tmp_path: Path):
    root = tmp_path / "empty"
    root.mkdir()
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        assert await wait_for(pilot, lambda: "doctor lab run SPEC" in screen_text(app))


def test_no_key_is_bound_twice_where_both_would_apply():
    """A screen's key that repeats an app-wide key hides it there (L for the lab was a grad-norm toggle on
    the findings screen, so the lab could not be opened from it)."""
    from doctor.tui.commands import COMMANDS

    app_keys = {c.key: c.action for c in COMMANDS if c.scope == "app"}
    seen: dict[tuple[str, str], str] = {}
    for c in COMMANDS:
        if c.scope in ("app", "modal"):
            continue
        assert c.key not in app_keys or c.action == app_keys[c.key], f"{c.scope} {c.key} hides app {app_keys[c.key]}"
        assert (c.scope, c.key) not in seen, f"{c.scope} {c.key} bound twice"
        seen[(c.scope, c.key)] = c.action


def test_lab_plots_keep_a_title_when_narrow(tmp_path: Path):
    """At 120 columns each plot is ~40 wide: the long titles did not fit and plotext dropped them."""
    import re

    from doctor.tui.widgets import lab_plots

    report = json.loads((lab_world(tmp_path) / ".doctor" / "lab" / "healthy-lab" / "report.json").read_text())
    for plot, word in (
        (lab_plots.quality_plot, "overall %"),
        (lab_plots.memory_plot, "peak MiB"),
        (lab_plots.latency_plot, "p50 ms"),
    ):
        for width in (30, 40, 60):
            text = re.sub(r"\x1b\[[0-9;]*m", "", plot(report, width, 10))
            assert word in text.splitlines()[0], (plot.__name__, width, text.splitlines()[0])
