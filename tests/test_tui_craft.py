"""Terminal craft, driven with Pilot: focus ring on every focusable widget, "N of M" while filtering, `o`
opens $EDITOR at the finding's line, OSC 52 copy, keyboard scrolling in panes and dialogs, log-scale
grad norm, watch findings that go when the log no longer shows them, palette order, plurals."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.tui import make_app

sys.path.insert(0, str(Path(__file__).parent))
from test_tui_support import make_world, screen_text, settle, wait_for, write_clean_run

from doctor.tui.commands import COMMANDS
from doctor.tui.widgets.findings import FindingsTable
from doctor.tui.widgets.plot_view import PlotView

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return make_world(tmp_path / "world")


def _look(w) -> tuple:
    s = w.styles
    return (s.border_left, s.outline_left, s.text_style, s.background, s.border_top, s.tint)


async def _assert_focus_ring(pilot, app) -> list[str]:
    chain = list(app.screen.focus_chain)
    assert chain, app.screen
    checked = []
    for w in chain:
        others = [o for o in chain if o is not w]
        if others:
            others[0].focus()
        else:
            app.screen.set_focus(None)
        await pilot.pause()
        blurred = _look(w)
        w.focus()
        await pilot.pause()
        assert _look(w) != blurred, f"{type(w).__name__}#{w.id} looks the same focused and not"
        checked.append(w.id or type(w).__name__)
    return checked


async def test_every_focusable_widget_shows_a_focus_ring(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        seen = await _assert_focus_ring(pilot, app)
        assert {"findings", "tree", "detail-text"} <= set(seen)
        for key in ("p", "j"):
            await pilot.press(key)
            await settle(pilot)
            seen += await _assert_focus_ring(pilot, app)
        await pilot.press("escape")
        await settle(pilot)
        for key in ("question_mark", "e"):
            await pilot.press(key)
            await settle(pilot)
            seen += await _assert_focus_ring(pilot, app)
            await pilot.press("escape")
            await settle(pilot)
        assert {"pb-path", "jobs-table", "help-scroll", "export-format", "write"} <= set(seen)


async def test_header_says_n_of_m_while_a_filter_is_on(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        total = len(app.report.findings)
        assert " of " not in screen_text(app).splitlines()[0]
        await pilot.press("slash")
        await pilot.press(*"rule:TRN001")
        await pilot.press("enter")
        await settle(pilot)
        shown = app.screen.query_one(FindingsTable).row_count
        assert 0 < shown < total
        assert f"{shown} of {total} findings" in screen_text(app).splitlines()[0]
        await pilot.press("escape")
        await settle(pilot)
        assert " of " not in screen_text(app).splitlines()[0]


async def test_o_opens_the_finding_in_editor_at_its_line(world: Path, tmp_path: Path, monkeypatch):
    record = tmp_path / "argv.json"
    editor = tmp_path / "fake-editor"
    editor.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        f = app.screen.query_one(FindingsTable).current().finding
        await pilot.press("o")
        assert await wait_for(pilot, record.exists, timeout=20)
        assert json.loads(record.read_text()) == [f"+{f.line or 1}", str(f.path)]


async def test_copy_finding_and_path_to_the_clipboard(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        f = app.screen.query_one(FindingsTable).current().finding
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard.startswith(f"{f.rule} {f.severity.value} ") and f.message in app.clipboard
        await pilot.press("Y")
        await pilot.pause()
        assert app.clipboard == str(f.path)


async def test_keyboard_scrolls_help_and_panes(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        scroll = app.screen.query_one("#help-scroll")
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == 0
        await pilot.press("pagedown")
        await settle(pilot)
        assert scroll.scroll_y > 0
        await pilot.press("end")
        await settle(pilot)
        assert scroll.scroll_y == scroll.max_scroll_y
        await pilot.press("escape")
        await settle(pilot)
        # the finding's detail pane: tab to it, then the arrow keys scroll it
        detail = app.screen.query_one("#detail-text")
        detail.focus()
        await pilot.pause()
        if detail.max_scroll_y:
            await pilot.press("down")
            await settle(pilot)
            assert detail.scroll_y > 0
        await pilot.press("p")
        await settle(pilot)
        side = app.screen.query_one("#pb-side")
        side.focus()
        await pilot.pause()
        assert side.max_scroll_y > 0
        await pilot.press("pagedown")
        await settle(pilot)
        assert side.scroll_y > 0


async def test_log_scale_toggle_for_grad_norm(world: Path):
    app = make_app([world / "unstable"], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        plot = app.screen.query_one(PlotView)
        assert "grad norm" in plot.plain and "(log scale)" not in plot.plain
        await pilot.press("G")
        await settle(pilot)
        assert "grad norm (log scale)" in plot.plain
        await pilot.press("G")
        await settle(pilot)
        assert "(log scale)" not in plot.plain


async def test_watch_findings_go_when_the_log_no_longer_shows_them(world: Path):
    app = make_app([world / "clean"], Settings(), watch_interval=0.1)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await pilot.pause()
        log = world / "clean" / "trainer_log.jsonl"
        with log.open("a") as fh:
            for s in range(121, 141):
                fh.write(json.dumps({"current_steps": s, "loss": float("nan"), "grad_norm": 1.0}) + "\n")
        assert await wait_for(pilot, lambda: any(f.rule == "TRN001" for f in app.report.findings), timeout=60)
        # the run restarts: the log is rewritten without the NaN steps
        tmp = world / "clean" / "restarted"
        write_clean_run(tmp)
        os.replace(tmp / "trainer_log.jsonl", log)
        assert await wait_for(pilot, lambda: not any(f.rule == "TRN001" for f in app.report.findings), timeout=60)
        assert not app.screen.query_one(FindingsTable).rows_all or all(
            r.finding.rule != "TRN001" for r in app.screen.query_one(FindingsTable).rows_all
        )
        assert any("rewritten" in n.message and "gone" in n.message for n in app._notifications)


async def test_palette_lists_doctor_actions_first_and_plurals_are_right(world: Path):
    app = make_app([world / "clean"], Settings())
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        ours = {c.title for c in COMMANDS if c.action != "quit"}  # Textual's own "Quit" stays with its defaults
        first_foreign = next(i for i, t in enumerate(titles) if t not in ours)
        assert all(t not in ours for t in titles[first_foreign:]), titles  # Textual's come after ours
        assert first_foreign >= len([c for c in COMMANDS if c.scope in ("app", "overview") and c.action != "quit"])
        await pilot.press("w")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert "watching 1 training log for new findings" in messages, messages
        assert not any("(s)" in m for m in messages)
        n = len(app.report.artifacts)
        header = screen_text(app).splitlines()[0]
        assert f"{n} artifact{'' if n == 1 else 's'}" in header and "1 artifacts" not in header, header


def _running_reeval(root: Path, **fields):
    from doctor.jobs.store import JobStore

    store = JobStore(root)
    job = store.create({"schema": "peft-doctor/job/1", "kind": "reeval", "rollout": str(root)})
    store.set_state(job.id, "running", "test", **fields)
    return store, job.id


async def test_cancelling_a_job_asks_first(world: Path, monkeypatch):
    root = (world / "clean").resolve()
    _, jid = _running_reeval(root)
    asked: list[str] = []
    app = make_app([root], Settings(), job_poll_s=0.1)
    monkeypatch.setattr(app, "cancel_job", lambda job_id, r: asked.append(job_id))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("j")
        assert await wait_for(pilot, lambda: "running" in screen_text(app), timeout=60)
        await pilot.press("c")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "AskScreen", timeout=30)
        assert f"Cancel reeval job {jid}" in screen_text(app)
        await pilot.press("n")  # keep it running
        await settle(pilot)
        assert asked == [] and type(app.screen).__name__ == "JobsScreen"
        await pilot.press("c")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "AskScreen", timeout=30)
        await pilot.press("y")
        await settle(pilot)
        assert asked == [jid]


async def test_reeval_shows_examples_done_of_total_and_the_log_wraps(world: Path):
    root = (world / "clean").resolve()
    store, jid = _running_reeval(root)
    long = "worker: " + " ".join(f"word{i}" for i in range(60))
    store.add_events(
        jid,
        [
            {"event": "log", "message": long},
            {"event": "progress", "phase": "eval", "done": 37, "total": 120},
        ],
    )
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("j")
        assert await wait_for(pilot, lambda: "examples 37/120" in screen_text(app), timeout=60)
        assert "step 0/?" not in screen_text(app)
        log = app.screen.query_one("#job-log")
        rows = ["".join(seg.text for seg in strip) for strip in log.lines]
        assert len(rows) > 1 and "word0" in rows[0] and any("word59" in r for r in rows[1:])  # wrapped, not cut
        assert all(len(r.rstrip()) <= log.size.width for r in rows)
        assert "1 job, 1 active" in screen_text(app)
