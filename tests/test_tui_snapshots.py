"""SVG snapshots of each screen at 80×24 and 120×40 (pytest-textual-snapshot).

The world is synthetic and written fresh (deterministic numbers, relative paths), so the screens do not
depend on the machine or the clock. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.tui import make_app

sys.path.insert(0, str(Path(__file__).parent))
from test_tui_support import make_world, settle

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def world(tmp_path: Path, monkeypatch) -> Path:
    make_world(tmp_path / "world")
    monkeypatch.chdir(tmp_path)
    return Path("world")


def _app(path: Path):
    return make_app([path], Settings())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, world: Path, size):
    async def run_before(pilot):
        await settle(pilot)

    assert snap_compare(_app(world), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_filtered_spike(snap_compare, world: Path, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("slash", *"spike", "enter")
        await pilot.pause(0.3)

    assert snap_compare(_app(world), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_playbook_question(snap_compare, world: Path, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)

    assert snap_compare(_app(world / "clean"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_playbook_diagnosis(snap_compare, world: Path, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)

    assert snap_compare(_app(world / "unstable"), terminal_size=size, run_before=run_before)


def test_help(snap_compare, world: Path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(_app(world), terminal_size=(80, 24), run_before=run_before)


def test_export_dialog(snap_compare, world: Path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        pilot.app.screen.query_one("#export-path").cursor_blink = False

    assert snap_compare(_app(world), terminal_size=(80, 24), run_before=run_before)


def test_jobs_empty(snap_compare, world: Path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(_app(world), terminal_size=(120, 40), run_before=run_before)
