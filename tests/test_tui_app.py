"""Pilot tests of the Textual app: open, filter, sort, select → plot, playbook walk + answer, export,
help, command palette, watch mode, jobs (cancel, completed comparison), 10k findings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.tui import make_app

sys.path.insert(0, str(Path(__file__).parent))
from test_tui_support import make_world, screen_text, settle, synthetic_report, wait_for

from doctor.tui.commands import COMMANDS
from doctor.tui.widgets.findings import FindingDetail, FindingsTable
from doctor.tui.widgets.plot_view import PlotView

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    return make_world(tmp_path / "world")


def _plain(widget) -> str:
    return widget.plain


async def test_first_paint_before_scan_then_fills_in(world: Path, monkeypatch):
    import doctor.engine

    release = threading.Event()
    real = doctor.engine.check

    def slow_check(*args, **kwargs):
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(doctor.engine, "check", slow_check)
    app = make_app([world], Settings())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.report is None
        assert "scanning" in screen_text(app)
        assert app.first_paint_s is not None
        release.set()
        await settle(pilot)
        table = app.screen.query_one(FindingsTable)
        assert app.report is not None and table.row_count == len(app.report.findings) >= 3
        counts = app.report.counts()
        text = screen_text(app)
        assert "✗ 1 error" in text and f"! {counts['warning']} warnings" in text


async def test_filter_sort_and_select_finding_shows_its_plot(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FindingsTable)
        total = table.row_count
        # the most severe finding comes first and its plot is drawn with the non-finite steps marked
        assert table.current().finding.rule == "TRN001"
        plot = app.screen.query_one(PlotView)
        drawn = _plain(plot)
        assert "loss" in drawn and "grad norm" in drawn and "✗ non-finite at" in drawn
        assert "first non-finite value at step 100" in app.screen.query_one(FindingDetail).finding.message
        assert "first non-finite value at step 100" in screen_text(app)
        # filter with `/`
        await pilot.press("slash")
        for ch in "spike":
            await pilot.press(ch)
        await pilot.pause(0.3)
        assert table.row_count == 1 and table.current().finding.rule == "TRN002"
        await pilot.press("enter")
        assert app.focused is table
        assert "● flagged steps 60" in _plain(plot)
        # esc clears the filter
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert table.row_count == total
        # severity filter word
        await pilot.press("slash", *"sev:warning", "enter")
        await pilot.pause(0.3)
        warnings = app.report.counts()["warning"]
        assert warnings and table.row_count == warnings and {r.severity for r in table.shown_rows} == {"warning"}
        await pilot.press("escape")
        # sort cycles columns
        await pilot.press("s")
        assert table.sort_key == "rule"
        assert [r.rule for r in table.shown_rows] == sorted(r.rule for r in table.shown_rows)
        await pilot.press("S")
        assert table.sort_reverse
        # moving the cursor changes the detail
        await pilot.press("home", "down")
        await pilot.pause()
        assert table.current().finding is app.screen.query_one(FindingDetail).finding


async def test_artifact_tree_filters_to_an_artifact(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.screen.query_one("#tree")
        assert tree.display  # wide: the tree shows
        labels = [str(n.label) for n in tree.root.children]
        assert labels == ["✗ training_log (2)"]
        leaf = next(n for n in tree.root.children[0].children if n.data == "unstable/trainer_log.jsonl")
        assert str(leaf.label).startswith("✗")
        tree.select_node(leaf)
        await pilot.pause(0.3)
        table = app.screen.query_one(FindingsTable)
        on_it = [f for f in app.report.findings if f.path.parent.name == "unstable"]
        assert table.row_count == len(on_it) and table.current().finding.rule == "TRN001"


async def test_tree_groups_rollouts_and_hides_when_narrow(tmp_path: Path):
    """Several rollouts: rollout → kind → the path inside the rollout, so leaves read apart when narrow;
    below 100 columns the tree starts hidden (t shows it)."""
    root = _demo_copies(tmp_path, "corrupt", "healthy")
    app = make_app([root], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tree = app.screen.query_one("#tree")
        rollouts = [str(n.label) for n in tree.root.children]
        assert rollouts == ["✗ corrupt/", "✓ healthy/"], rollouts
        corrupt = tree.root.children[0]
        kinds = {str(k.label).split(" ", 1)[1].split(" (")[0]: k for k in corrupt.children}
        leaves = [str(leaf.label)[2:] for leaf in kinds["training_log"].children]
        assert "train/trainer_state.json" in leaves, leaves  # short, distinctive leaf names
        assert all(leaf.data.startswith("corrupt/") for leaf in kinds["training_log"].children)
    app = make_app([root], Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        tree = app.screen.query_one("#tree")
        assert not tree.display
        await pilot.press("t")
        assert tree.display


async def test_findings_show_their_locator(tmp_path: Path):
    """Two findings of one rule on one file differ by locator: a column when wide, the end of the title
    when narrow."""
    from doctor.core.model import Finding, Report, Severity

    path = Path("/synthetic/corrupt/adapter/adapter_config.json")
    findings = [
        Finding(
            rule="ADP003",
            severity=Severity.ERROR,
            title="adapter_config.json field invalid",
            message="m",
            path=path,
            locator=loc,
        )
        for loc in ("/r", "/target_modules")
    ]
    report = Report(targets=[Path("/synthetic")], artifacts=[], findings=findings)
    for size, wide in (((150, 40), True), ((80, 24), False)):
        app = make_app([Path("/synthetic")], Settings(), report=report)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            table = app.screen.query_one(FindingsTable)
            assert table.wide is wide
            lines = screen_text(app).splitlines()
            header = next(ln for ln in lines if ("severity" in ln or "sev" in ln) and "rule" in ln)
            assert ("where" in header) is wide and ("severity" in header) is wide  # narrow: the glyph alone
            rows = [ln.lstrip("▕ ") for ln in lines if "✗" in ln and "ADP003" in ln and "ERROR" not in ln]
            assert len(rows) == 2 and rows[0] != rows[1]
            assert "/r" in rows[0] + rows[1] and "/target_modules" in rows[0] + rows[1]
            if not wide:
                assert any(r.rstrip().endswith("(/target_modules)") for r in rows), rows


async def test_playbook_walk_answer_and_undo(world: Path):
    app = make_app([world / "clean"], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        screen = app.screen
        assert screen.id == "playbook"
        assert screen.triage.pending is not None
        assert screen.triage.pending.node == "user_reports_regression"
        text = screen_text(app)
        assert "Do users still see a regression" in text and "1. yes" in text
        # answers read as the question, then the answer (no "no  artifacts_readable: Are any … unreadable")
        assert "Did training become unstable" in text and "? → no" in text
        assert "no  artifacts_readable" not in text
        # answer with a key: "1" = yes → prompt/policy diagnosis with a re-eval job action
        await pilot.press("1")
        await settle(pilot)
        assert screen.triage.pending is None
        assert app.answers[str((world / "clean").resolve())] == {"triage.user_reports_regression": "yes"}
        assert any(a["kind"] == "job" and a["job"]["kind"] == "reeval" for a in screen.actions)
        assert [s.how for s in screen.triage.path if s.node == "user_reports_regression"] == ["user"]
        # a job action needs a rollout manifest: the error is shown, nothing starts
        await pilot.press("l")
        await pilot.pause()
        assert app.screen is screen
        # undo takes the answer back
        await pilot.press("u")
        await settle(pilot)
        assert screen.triage.pending is not None
        await pilot.press("escape")
        assert app.screen.id == "overview"


async def test_playbook_evidence_at_each_node(world: Path):
    app = make_app([world / "unstable"], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        text = screen_text(app)
        assert "Did training become unstable" in text and "? → yes" in text and "TRN001 Non-finite loss" in text
        assert "Likely causes" in text
        assert app.screen.triage.causes


async def test_export_format_choice_renames_default_file(world: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app([world], Settings())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        formats = app.screen.query_one("#export-format")
        box = app.screen.query_one("#export-path")
        md = next(i for i in range(formats.option_count) if formats.get_option_at_index(i).id == "markdown")
        formats.highlighted = md
        await pilot.pause()
        assert box.value == "doctor-report.md"
        assert "markdown →" in str(app.screen.query_one("#export-status").render())
        await pilot.press("enter", "enter")
        await pilot.pause()
        written = tmp_path / "doctor-report.md"
        assert written.read_text().strip() and app.screen.id == "overview"
        assert any(str(written.resolve()) in n.message for n in app._notifications)
        # a name the user typed is kept when the format changes
        await pilot.press("e")
        await pilot.pause()
        box = app.screen.query_one("#export-path")
        box.value = "mine.txt"
        app.screen.query_one("#export-format").highlighted = 0
        await pilot.pause()
        assert box.value == "mine.txt"


async def test_export_writes_each_format(world: Path, tmp_path: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert app.screen.id == "export"
        formats = app.screen.query_one("#export-format")
        box = app.screen.query_one("#export-path")
        assert app.focused is formats  # enter does not write at once: the format is picked first
        assert box.value == "doctor-report.json"
        out = tmp_path / "out" / "report.json"
        box.value = str(out)
        await pilot.press("enter")  # format chosen (json): on to the file name
        await pilot.pause()
        assert app.focused is box and not out.exists()
        await pilot.press("enter")
        await pilot.pause()
        data = json.loads(out.read_text())
        assert data["schema"] == "peft-doctor/report/1" and data["summary"]["error"] == 1
        assert app.screen.id == "overview"
        assert any(str(out.resolve()) in n.message for n in app._notifications)  # the toast names the path
        from doctor.tui.screens.export import write_report

        for fmt in ("sarif", "junit", "markdown", "console", "gitlab", "github"):
            p = write_report(app.report, fmt, tmp_path / f"r.{fmt}")
            assert p.read_text().strip()


async def test_help_lists_every_key_and_palette_offers_every_action(world: Path):
    app = make_app([world], Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        from rich.console import Console

        from doctor.tui.screens.help import help_table

        console = Console(width=120, record=True)
        console.print(help_table())
        rendered = console.export_text()
        for c in COMMANDS:
            assert c.help in rendered, c
        await pilot.press("escape")
        assert app.screen.id == "overview"
        # every binding has an id and a description
        for c in COMMANDS:
            b = c.binding()
            assert b.id and b.description and b.tooltip
        # the palette offers the app's actions and the screen's
        titles = {cmd.help for cmd in app.get_system_commands(app.screen)}
        for c in COMMANDS:
            if c.scope in ("app", "overview") and c.action != "quit":
                assert c.help in titles, c
        await pilot.press("p")
        await settle(pilot)
        titles = {cmd.help for cmd in app.get_system_commands(app.screen)}
        assert all(c.help in titles for c in COMMANDS if c.scope == "playbook")
        # palette entries: a short title and a longer description, never the same text twice; one help
        cmds = list(app.get_system_commands(app.screen))
        assert all(cmd.title != cmd.help for cmd in cmds), [c.title for c in cmds if c.title == c.help]
        assert "Keys" not in {cmd.title for cmd in cmds} and "Help" in {cmd.title for cmd in cmds}


async def test_help_has_watch_section_and_uncut_keys(world: Path):
    from rich.console import Console

    from doctor.tui.screens.help import help_table

    console = Console(width=76, record=True)
    console.print(help_table())
    rendered = console.export_text()
    assert "Watch mode (w)" in rendered and "◉ watching" in rendered
    assert "enter (tree)" in rendered and "click header" in rendered and "↑ ↓ / click" in rendered


async def test_footers_fit_80_columns(world: Path):
    """At 80 columns every screen's footer shows all its keys, quit included, and ends cleanly."""
    app = make_app([world / "unstable"], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        expected = {
            "overview": ["/ Filter", "p Playbook", "j Jobs", "w Watch", "e Export", "r Rescan", "? Help", "q Quit"],
            "playbook": ["esc Back", "[ Prev", "] Next", "l Launch", "u Undo", "j Jobs", "? Help", "q Quit"],
            "jobs": ["esc Back", "c Cancel job", "p Playbook", "? Help", "q Quit"],
        }
        for key in (None, "p", "j"):
            if key:
                await pilot.press(key)
                await settle(pilot)
            footer = screen_text(app).splitlines()[-1]
            for label in expected[app.screen.id]:
                assert label in footer, (app.screen.id, footer)
            assert footer.rstrip().endswith("^p Commands"), footer
        # keys left out of a footer still work
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("w")  # watch from the playbook: hidden there, still bound
        await pilot.pause()
        assert app.watching


async def test_playbook_actions_visible_at_80x24(tmp_path: Path):
    root = _demo_copies(tmp_path, "corrupt")
    app = make_app([root / "corrupt"], Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.pause(0.2)
        screen = app.screen
        assert any(a["kind"] == "job" for a in screen.actions)
        # the job to launch is on screen without scrolling by hand (the side pane scrolls to it)
        assert await wait_for(pilot, lambda: "▶ retrain" in screen_text(app), timeout=60), screen_text(app)
        assert "Actions" in screen_text(app)
        assert app.focused is screen.query_one("#actions")
        assert screen.selected_action()["kind"] == "job"


async def test_footer_keys_all_work(world: Path):
    """Every key shown in a footer does something (no dead keys): press each and check its effect."""
    app = make_app([world], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key, screen_id in (("p", "playbook"), ("j", "jobs")):
            await pilot.press(key)
            await settle(pilot)
            assert app.screen.id == screen_id
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen.id == "overview"
        await pilot.press("r")
        await settle(pilot)
        assert app.scans == 2 and app.report is not None


async def test_watch_notifies_on_new_error(world: Path):
    app = make_app([world / "clean"], Settings(), watch_interval=0.1)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        before = len(app.report.findings)
        await pilot.press("w")
        await pilot.pause()
        assert app.watching
        log = world / "clean" / "trainer_log.jsonl"
        with log.open("a") as fh:
            for s in range(121, 141):
                fh.write(json.dumps({"current_steps": s, "loss": float("nan"), "grad_norm": 1.0}) + "\n")
        assert await wait_for(pilot, lambda: len(app.report.findings) > before, timeout=60)
        assert any(f.rule == "TRN001" for f in app.report.findings)
        assert any(n.title == "New error" for n in app._notifications)
        await pilot.press("w")
        assert not app.watching


async def test_watch_reports_nothing_already_in_the_scan(world: Path):
    """Starting watch reads the logs once as a baseline: no finding the scan has is added again."""
    app = make_app([world], Settings(), watch_interval=0.05)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        before = len(app.report.findings)
        await pilot.press("w")
        await pilot.pause(1.0)
        assert app.watching and len(app.report.findings) == before
        assert not any(n.title == "New error" for n in app._notifications)


async def test_watch_skips_event_files_of_a_trainer_state_run(tmp_path: Path):
    """A TensorBoard file beside trainer_state.json is the same run (doctor check marks it ✓): watch
    does not follow it, so its findings are not re-found there."""
    from doctor.tui.watching import training_logs

    root = _demo_copies(tmp_path, "diverged")
    app = make_app([root], Settings(), watch_interval=0.05)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await settle(pilot)
        logs = training_logs(app.report)
        assert logs and not any(p.name.startswith("events.out.tfevents") for p in logs)
        assert any(a.path.name.startswith("events.out.tfevents") for a in app.report.artifacts)
        counts = dict(app.report.counts())
        await pilot.press("w")
        await pilot.pause(1.5)
        assert app.watching and dict(app.report.counts()) == counts
        assert not any(n.title == "New error" for n in app._notifications)


async def test_rescan_keeps_watching(world: Path):
    app = make_app([world / "clean"], Settings(), watch_interval=0.1)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await pilot.pause()
        assert app.watching and "◉ watching" in screen_text(app)
        await pilot.press("r")
        await settle(pilot)
        assert app.scans == 2
        assert app.watching and "◉ watching" in screen_text(app)
        # still following: a new error after the rescan is reported once
        before = len(app.report.findings)
        with (world / "clean" / "trainer_log.jsonl").open("a") as fh:
            for s in range(121, 141):
                fh.write(json.dumps({"current_steps": s, "loss": float("nan"), "grad_norm": 1.0}) + "\n")
        assert await wait_for(pilot, lambda: len(app.report.findings) > before, timeout=60)
        await pilot.press("w")
        await pilot.pause()
        assert not app.watching and "◉ watching" not in screen_text(app)


def _fake_job(root: Path, state: str, **fields):
    from doctor.jobs.store import JobStore

    store = JobStore(root)
    job = store.create({"schema": "peft-doctor/job/1", "kind": "reeval", "rollout": str(root)})
    store.set_state(job.id, state, "test", **fields)
    return store, job.id


async def test_jobs_screen_shows_progress_loss_and_comparison(world: Path):
    root = (world / "clean").resolve()
    store, jid = _fake_job(
        root,
        "succeeded",
        step=10,
        max_steps=10,
        comparison={"before": {"accuracy": 0.5}, "after": {"accuracy": 0.7}},
    )
    store.add_events(jid, [{"event": "metrics", "step": s, "loss": 2.0 / s} for s in range(1, 11)])
    store.add_event(jid, {"event": "log", "message": "hello from the worker"})
    app = make_app([root], Settings(), job_poll_s=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("j")
        ok = await wait_for(pilot, lambda: "before → after" in screen_text(app), timeout=60)
        text = screen_text(app)
        assert ok, text
        assert jid[:12] in text and "✓ succeeded" in text and "100%" in text
        # each cell sits under its column's header
        table = app.screen.query_one("#jobs-table")
        heads = [str(c.label) for c in table.ordered_columns]
        assert heads == ["job", "kind", "rollout", "state", "progress", "ETA"]
        row = dict(zip(heads, (str(c) for c in table.get_row_at(0))))
        assert row["job"] == jid and row["kind"] == "reeval" and row["state"] == "✓ succeeded"
        assert row["progress"].endswith("100%") and row["rollout"] == "clean"
        assert "accuracy" in text and "+0.2" in text
        assert "hello from the worker" in text
        assert "loss" in _plain(app.screen.query_one("#job-loss"))


async def test_cancel_a_running_job(world: Path):
    root = (world / "clean").resolve()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        store, jid = _fake_job(root, "running", step=3, max_steps=10, eta_s=42.0, worker_pid=proc.pid)
        app = make_app([root], Settings(), job_poll_s=0.1)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("j")
            assert await wait_for(pilot, lambda: "running" in screen_text(app), timeout=60)
            assert "42s" in screen_text(app) and "30%" in screen_text(app)
            await pilot.press("c")
            assert await wait_for(pilot, lambda: app.screen.__class__.__name__ == "AskScreen", timeout=30)
            await pilot.press("y")  # cancelling asks first (tests/test_tui_craft.py)
            assert await wait_for(pilot, lambda: proc.poll() is not None, timeout=60)
            assert proc.returncode == -signal.SIGTERM
            assert store.get(jid).cancel_requested
            # the job ending shows up on screen
            store.set_state(jid, "cancelled", "test")
            assert await wait_for(pilot, lambda: "■ cancelled" in screen_text(app), timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


async def test_ten_thousand_findings_stay_responsive():
    report = synthetic_report(10_000)
    app = make_app([Path("/synthetic")], Settings(), report=report)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FindingsTable)
        assert table.row_count == 10_000
        # Filter and sort timings are measured by bench/tui_startup.py; here: they give the right rows.
        table.set_query("sev:error run07")
        await pilot.pause()
        assert 0 < table.row_count < 10_000
        table.set_query("")
        table.set_sort("title")
        await pilot.pause()
        assert table.row_count == 10_000


def _demo_copy(tmp_path: Path, scenario: str) -> Path:
    """Copy one demo rollout to tmp_path, keeping its relative links to the base model and data."""
    import shutil

    from conftest import FIXTURES

    src = FIXTURES / "rollouts" / scenario
    if not (src / "rollout.toml").is_file() or not (FIXTURES / "models").is_dir():
        pytest.skip(f"demo world not built ({src})")
    dst = tmp_path / "fixtures" / "rollouts" / scenario
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".doctor"))
    for name in ("models", "data"):
        (tmp_path / "fixtures" / name).symlink_to(FIXTURES / name)
    return dst


def _demo_copies(tmp_path: Path, *scenarios: str) -> Path:
    """Copies of demo rollouts side by side; returns the folder that holds them."""
    for scenario in scenarios:
        src = _demo_copy(tmp_path, scenario) if scenario == scenarios[0] else None
        if src is None:
            import shutil

            from conftest import FIXTURES

            shutil.copytree(
                FIXTURES / "rollouts" / scenario,
                tmp_path / "fixtures" / "rollouts" / scenario,
                ignore=shutil.ignore_patterns(".doctor"),
            )
    return tmp_path / "fixtures" / "rollouts"


@pytest.mark.slow
async def test_launch_reeval_job_on_demo_world_and_see_it_complete(tmp_path: Path):
    root = _demo_copy(tmp_path, "healthy")
    app = make_app([root], Settings(), job_poll_s=0.2)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        screen = app.screen

        def reeval_index():
            return next(
                (i for i, a in enumerate(screen.actions) if a["kind"] == "job" and a["job"]["kind"] == "reeval"), None
            )

        if reeval_index() is None and screen.triage.pending is not None:
            await pilot.press("1")  # "yes, users still see a regression" → re-evaluate
            await settle(pilot)
        if reeval_index() is None:
            # the healthy scenario's checks explain everything: say they did not, as a user can
            app.answers[str(root.resolve())] = {"triage.found_cause": "no", "triage.user_reports_regression": "yes"}
            screen.walk()
            await settle(pilot)
        idx = reeval_index()
        assert idx is not None, screen.actions
        screen.query_one("#actions").highlighted = idx
        await pilot.press("l")
        await pilot.pause()
        assert app.screen.id == "confirm-job"
        text = screen_text(app)
        assert '"kind": "reeval"' in text and '"rollout":' in text  # the exact spec is shown
        assert app.screen.spec["rollout"] == str(root.resolve())
        await pilot.press("y")
        assert await wait_for(pilot, lambda: app.screen.id == "jobs", timeout=60)
        jobs = app.screen
        assert await wait_for(pilot, lambda: any(j.done for _, j in jobs.jobs), timeout=600, step=0.5), screen_text(app)
        (_, job) = jobs.jobs[0]
        assert job.state == "succeeded", job.error
        assert await wait_for(pilot, lambda: "before → after" in screen_text(app), timeout=60)
        text = screen_text(app)
        assert "✓ succeeded" in text and "accuracy" in text
        assert any(n.title == "Job ended" for n in app._notifications) or job.id in jobs.ended_seen


@pytest.mark.anyio
async def test_watch_fallback_without_log_watcher(world: Path):
    """Without probes.training.watch the app re-checks a log when it changes."""
    from doctor.tui import watching

    log = world / "clean" / "trainer_log.jsonl"
    report = __import__("doctor.engine", fromlist=["check"]).check([world / "clean"], Settings())
    known = {watching.key(f) for f in report.findings}
    got: list = []
    stop = threading.Event()
    t = threading.Thread(
        target=watching._poll_checks, args=([log], Settings(), got.extend, stop, 0.05), kwargs={"known": known}
    )
    t.start()
    try:
        time.sleep(0.2)
        with log.open("a") as fh:
            for s in range(121, 141):
                fh.write(json.dumps({"current_steps": s, "loss": float("nan"), "grad_norm": 1.0}) + "\n")
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
    assert any(f.rule == "TRN001" for f in got)


async def test_playbook_reopens_on_the_rollout_it_was_switched_to(tmp_path: Path):
    """] in the playbook moves to the next rollout; leaving and pressing p again comes back to that rollout,
    not the highlighted finding's (a job launched after a relaunch must hit the rollout the user chose)."""
    from tests.conftest import ROLLOUTS

    app = make_app([ROLLOUTS], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        first = app.screen.root
        await pilot.press("]")
        await settle(pilot)
        switched = app.screen.root
        assert switched != first
        await pilot.press("j")  # another main screen, then back to the playbook
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert app.screen.id == "playbook" and app.screen.root == switched
        # Picking another finding on the overview makes its rollout the one to triage again.
        await pilot.press("escape")
        await settle(pilot)
        app.overview.query_one(FindingsTable).action_cursor(1)
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        from doctor.tui.data import rollout_of

        row = app.overview.query_one(FindingsTable).current()
        assert row is not None and app.screen.root == rollout_of(row.finding.path, app.roots())


def test_app_quits_when_its_terminal_closes_under_a_parent_that_keeps_running(tmp_path: Path):
    """`make demo` in a window that is closed: the hang-up goes to make (the session leader), which stays to
    wait for the app, so the app never sees SIGHUP. It must notice the dead terminal and exit, not spin."""
    import pty
    import select

    from tests.conftest import REPO

    world = make_world(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # child: a leader that survives SIGHUP (like make) runs the app in the foreground
        os.chdir(REPO)
        cmd = f"trap 'echo hup' HUP; {sys.executable} -m doctor tui {world / 'clean'}; echo app-exited"
        os.execvp("sh", ["sh", "-c", cmd])
    try:
        seen, deadline = b"", time.monotonic() + 60
        while b"peft-doctor" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        assert b"peft-doctor" in seen, seen[-500:]
    finally:
        os.close(fd)  # the window closes
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        subprocess.run(["pkill", "-f", f"doctor tui {world / 'clean'}"], check=False)
        raise AssertionError("the app outlived its terminal")
