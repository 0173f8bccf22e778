"""DoctorApp: scans in a thread worker, paints at once, fills in with progress; playbook, jobs, watch,
export and help screens on top. Workers never touch widgets: they post messages or call_from_thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from doctor.core.model import Finding, Report, Severity
from doctor.core.settings import Settings, load_settings
from doctor.tui.commands import COMMANDS, bindings, plural
from doctor.tui.data import common_base, rel, rollout_of, rollout_roots
from doctor.tui.screens.overview import OverviewScreen

PROGRESS_EVERY_S = 0.05


class ScanProgress(Message):
    def __init__(self, done: int, total: int, path: str) -> None:
        self.done, self.total, self.path = done, total, path
        super().__init__()


class ScanDone(Message):
    def __init__(self, report: Report, seconds: float) -> None:
        self.report, self.seconds = report, seconds
        super().__init__()


class ScanFailed(Message):
    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__()


class NewFindings(Message):
    """Watch mode found findings that were not there before."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__()


class LogRewritten(Message):
    """Watch mode saw a log deleted, replaced or truncated; `findings` are what it shows now."""

    def __init__(self, path: Path, findings: list[Finding]) -> None:
        self.path, self.findings = path, findings
        super().__init__()


class JobLaunched(Message):
    def __init__(self, job_id: str, root: Path) -> None:
        self.job_id, self.root = job_id, root
        super().__init__()


def _stdin_is_tty() -> bool:
    import sys

    try:
        return sys.__stdin__ is not None and sys.__stdin__.isatty()
    except (OSError, ValueError):
        return False


class DoctorApp(App):
    CSS_PATH = "doctor.tcss"
    TITLE = "peft-doctor"
    BINDINGS = [*bindings("app"), Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(
        self,
        paths: list[Path],
        settings: Settings | None = None,
        *,
        watch_interval: float = 1.0,
        job_poll_s: float = 0.5,
        report: Report | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.settings = settings if settings is not None else load_settings()
        self.base = common_base(paths)
        self.report: Report | None = None
        self.scan_seconds: float | None = None
        self.first_paint_s: float | None = None
        self.scan_error: str | None = None
        self.answers: dict[str, dict[str, str]] = {}  # rollout root → {"playbook.node": choice}
        # The rollout the playbook was last switched to ([ / ]), and the finding highlighted then: `p` returns
        # there until another finding is picked on the overview.
        self._playbook_pick: tuple[Path, Any] | None = None
        self.watching = False
        self.watch_added: list[Finding] = []  # findings watch mode added (they go when their log no longer shows them)
        self.watch_interval = watch_interval
        self.job_poll_s = job_poll_s
        self._t0 = time.perf_counter()
        self._cancel_scan = threading.Event()
        self._stop_watch = threading.Event()
        self._last_progress = 0.0
        self._preloaded = report
        self.scans = 0  # completed scans

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def target_label(self) -> str:
        if len(self.paths) == 1:
            shown = self.paths[0].as_posix()
            parts = self.paths[0].parts
            return shown if len(shown) <= 32 or len(parts) < 3 else "…/" + "/".join(parts[-2:])
        return f"{len(self.paths)} paths"

    def get_default_screen(self) -> Screen:
        return OverviewScreen()

    @property
    def overview(self) -> OverviewScreen:
        return self.screen_stack[0]  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.call_after_refresh(self._painted)
        if not self.is_headless and _stdin_is_tty():
            self.set_interval(2.0, self._check_terminal)
        if self._preloaded is not None:  # a report given up front (bench, tests): no scan
            self.post_message(ScanDone(self._preloaded, 0.0))
            self._preloaded = None
            return
        self.start_scan()

    def _check_terminal(self) -> None:
        """Quit once the terminal is gone. A closed window sends SIGHUP only to the session leader: under
        `make demo` that is make, which waits for us, while the hung-up tty keeps Textual's input reader busy
        (a full core, forever)."""
        import sys

        try:
            import termios
        except ImportError:  # no POSIX terminal API: nothing to check
            return
        try:
            termios.tcgetattr(sys.__stdin__.fileno())
        except (termios.error, OSError, ValueError, AttributeError):
            self.exit(return_code=129)  # 128 + SIGHUP, as if the hang-up had reached us

    def _painted(self) -> None:
        if self.first_paint_s is None:
            self.first_paint_s = time.perf_counter() - self._t0

    def on_unmount(self) -> None:
        self._cancel_scan.set()
        self._stop_watch.set()

    # ----------------------------------------------------------------------------- scanning

    def start_scan(self) -> None:
        self._cancel_scan.set()
        self._cancel_scan = threading.Event()
        self.scan_error = None
        self._scan(self._cancel_scan)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scan")
    def _scan(self, cancelled: threading.Event) -> None:
        from doctor.engine import check

        t0 = time.perf_counter()

        def progress(path: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if done == total or now - self._last_progress >= PROGRESS_EVERY_S:
                self._last_progress = now
                self.post_message(ScanProgress(done, total, rel(Path(path), self.base)))

        try:
            report = check(self.paths, self.settings, progress=progress, cancelled=cancelled)
        except Exception as exc:  # shown in the app, never a traceback
            self.post_message(ScanFailed(f"{type(exc).__name__}: {exc}"))
            return
        if not cancelled.is_set():
            self.post_message(ScanDone(report, time.perf_counter() - t0))

    def on_scan_progress(self, msg: ScanProgress) -> None:
        if self.overview.ready:
            self.overview.show_progress(msg.done, msg.total, msg.path)

    def on_scan_done(self, msg: ScanDone) -> None:
        from doctor.render.redact import redact_report

        self.report = redact_report(msg.report)  # the screens show facts and evidence: no secret among them
        self.watch_added = []  # a fresh report: what watch added before is either in it or gone
        self.scan_seconds = msg.seconds
        self.scans += 1
        if self.overview.ready:
            self.overview.load(self.report)
        if self.watching:  # a rescan while watching: keep watching, from the new report as baseline
            self._start_watch(quiet=True)
        self.refresh_bindings()

    def on_scan_failed(self, msg: ScanFailed) -> None:
        self.scan_error = msg.error
        if self.overview.ready:
            self.overview.show_summary(f"scan failed: {msg.error}")
        self.notify(msg.error, title="Scan failed", severity="error", timeout=10)

    # ----------------------------------------------------------------------------- helpers for screens

    def roots(self) -> list[Path]:
        return rollout_roots(self.report) if self.report else []

    def _highlighted(self) -> Any:
        from doctor.tui.widgets.findings import FindingsTable

        try:
            return self.overview.query_one(FindingsTable).current()
        except Exception:
            return None

    def remember_playbook(self, root: Path) -> None:
        row = self._highlighted()
        self._playbook_pick = (root, row.finding if row is not None else None)

    def current_rollout(self) -> Path | None:
        """The rollout the playbook was last switched to (while the same finding is highlighted), else the
        highlighted finding's rollout, else the first rollout with an error, else the first."""
        roots = self.roots()
        if not roots:
            return None
        row = self._highlighted()
        if self._playbook_pick is not None and self._playbook_pick[0] in roots:
            picked, finding_then = self._playbook_pick
            if finding_then is (row.finding if row is not None else None):
                return picked
        if row is not None:
            r = rollout_of(row.finding.path, roots)
            if r is not None:
                return r
        assert self.report is not None
        for f in self.report.findings:
            if f.severity is Severity.ERROR:
                r = rollout_of(f.path, roots)
                if r is not None:
                    return r
        return roots[0]

    def rollout_label(self, root: Path) -> str:
        return rel(root, self.base) if self.base and root != self.base else root.name

    # ----------------------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("playbook", "export") and self.report is None:
            return None  # shown greyed out until the scan is done
        if action == "toggle_watch" and self.report is None:
            return None
        return True

    def action_help(self) -> None:
        from doctor.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_playbook(self) -> None:
        from doctor.tui.screens.playbook import PlaybookScreen

        if self.report is None:
            self.notify("the scan is still running", timeout=2)
            return
        root = self.current_rollout()
        if root is None:
            self.notify("no rollout found to triage", severity="warning")
            return
        self._go(PlaybookScreen, root)

    def action_jobs(self) -> None:
        from doctor.tui.screens.jobs import JobsScreen

        self._go(JobsScreen)

    def action_lab(self) -> None:
        from doctor.tui.screens.lab import LabScreen

        self._go(LabScreen)

    def _go(self, cls: type[Screen], *args: Any) -> None:
        """Open a main screen on top of the overview (replacing another main screen)."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(cls(*args))

    def action_export(self) -> None:
        from doctor.tui.screens.export import ExportScreen

        if self.report is None:
            self.notify("the scan is still running", timeout=2)
            return
        self.push_screen(ExportScreen(self.report))

    def action_rescan(self) -> None:
        self.report = None
        self.overview.query_one("#scan-progress").display = True
        self.overview.show_summary("scanning…")
        self.refresh_bindings()
        self.start_scan()

    @property
    def state_label(self) -> str:
        """What the summary bar says about the app's modes when nothing else is going on."""
        return "◉ watching" if self.watching else ""

    def action_toggle_watch(self) -> None:
        if self.watching:
            self.watching = False
            self._stop_watch.set()
            self.notify("watch mode off", timeout=2)
            self.overview.show_summary()
            return
        self._start_watch()

    def _start_watch(self, quiet: bool = False) -> None:
        """(Re)start following the report's training logs. What the logs hold now is the baseline: only
        findings that appear after this are reported."""
        from doctor.tui.watching import training_logs

        self._stop_watch.set()
        logs = training_logs(self.report) if self.report else []
        if not logs:
            self.watching = False
            self.notify("no training logs to watch", severity="warning")
            self.overview.show_summary()
            return
        self.watching = True
        self._stop_watch = threading.Event()
        self._watch(logs, self._stop_watch)
        if not quiet:
            self.notify(f"watching {plural(len(logs), 'training log')} for new findings", timeout=3)
        self.overview.show_summary()

    @work(thread=True, exclusive=True, exit_on_error=False, group="watch")
    def _watch(self, logs: list[Path], stop: threading.Event) -> None:
        from doctor.tui.watching import follow

        follow(
            logs,
            self.settings,
            lambda new: self.post_message(NewFindings(new)),
            stop,
            self.watch_interval,
            on_rewritten=lambda path, now: self.post_message(LogRewritten(path, now)),
        )

    def on_new_findings(self, msg: NewFindings) -> None:
        from doctor.tui.watching import already_known

        if self.report is None or not self.watching:
            return  # a rescan is running (it reads the logs afresh), or watching was switched off
        new = already_known(self.report, self.roots(), msg.findings)
        if not new:
            return
        self.report.findings.extend(new)
        self.watch_added.extend(new)
        errors = [f for f in new if f.severity is Severity.ERROR]
        for f in errors[:3]:
            self.notify(f"{f.rule} {f.title}: {f.message[:120]}", title="New error", severity="error", timeout=8)
        if not errors:
            self.notify(f"{plural(len(new), 'new finding')}", timeout=3)
        self.overview.load(self.report)

    def on_log_rewritten(self, msg: LogRewritten) -> None:
        """Findings watch added for this log that it no longer shows go; new ones it shows come in."""
        from doctor.tui.watching import already_known, key

        if self.report is None or not self.watching:
            return
        now = {key(f) for f in msg.findings}
        here = msg.path.resolve()
        gone = [f for f in self.watch_added if f.path is not None and f.path.resolve() == here and key(f) not in now]
        for f in gone:
            self.watch_added.remove(f)
            self.report.findings = [g for g in self.report.findings if g is not f]
        new = already_known(self.report, self.roots(), msg.findings)
        self.report.findings.extend(new)
        self.watch_added.extend(new)
        if gone or new:
            what = [plural(len(gone), "finding") + " gone"] if gone else []
            what += [plural(len(new), "new finding")] if new else []
            self.notify(f"{self.rollout_label(msg.path)} was rewritten: {', '.join(what)}", timeout=4)
            self.overview.load(self.report)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "watch" and event.state == WorkerState.ERROR:
            self.watching = False
            self.notify(f"watch stopped: {event.worker.error}", severity="error")
            if self.overview.ready:
                self.overview.show_summary()

    # ----------------------------------------------------------------------------- command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # doctor's own actions first (this screen's, then the app's), Textual's defaults after them; its
        # "Keys" panel duplicates our Help screen (which lists every key by screen)
        scope = getattr(screen, "SCOPE", "overview" if isinstance(screen, OverviewScreen) else None)
        for c in sorted(COMMANDS, key=lambda c: c.scope == "app"):
            if c.scope in {"app", scope} and c.action != "quit":
                target = screen if c.scope != "app" else self
                yield SystemCommand(c.title, c.help, partial(self._run, c.action, target))
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")

    def _run(self, action: str, target: Any) -> None:
        self.call_later(self.run_action, action, target)

    # ----------------------------------------------------------------------------- jobs

    def launch_job(self, spec: dict[str, Any], root: Path) -> None:
        self.notify(f"launching {spec.get('kind')} on {self.rollout_label(root)}…", timeout=2)
        self._launch(spec, root)

    @work(thread=True, exit_on_error=False, group="launch")
    def _launch(self, spec: dict[str, Any], root: Path) -> None:
        try:
            from doctor.jobs.api import launch

            job_id = launch(spec, root)
        except Exception as exc:
            self.call_from_thread(self.notify, str(exc), title="Job not started", severity="error", timeout=10)
            return
        self.post_message(JobLaunched(job_id, root))

    def on_job_launched(self, msg: JobLaunched) -> None:
        from doctor.tui.screens.jobs import JobsScreen

        self.notify(f"job {msg.job_id} started", title="Job launched", timeout=4)
        self._go(JobsScreen, msg.job_id)

    def cancel_job(self, job_id: str, root: Path) -> None:
        self._cancel(job_id, root)

    @work(thread=True, exit_on_error=False, group="cancel")
    def _cancel(self, job_id: str, root: Path) -> None:
        try:
            from doctor.jobs.api import cancel

            job = cancel(job_id, root)
        except Exception as exc:
            self.call_from_thread(self.notify, str(exc), title="Cancel failed", severity="error")
            return
        self.call_from_thread(self.notify, f"job {job_id}: cancel requested ({job.state})", timeout=3)
