"""The first screen: summary, artifact tree, findings table (sort, filter), detail and plot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult, SuspendNotSupported
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, ProgressBar

from doctor.core.model import Report
from doctor.render.escape import readable
from doctor.render.redact import Redactor
from doctor.tui.commands import bindings, plural
from doctor.tui.data import facts_for, make_rows, rel
from doctor.tui.widgets import plots
from doctor.tui.widgets.findings import ArtifactTree, FindingDetail, FindingsHeader, FindingsTable, SummaryBar
from doctor.tui.widgets.plot_view import PlotView

if TYPE_CHECKING:
    from doctor.tui.app import DoctorApp


def redact_text(text: str) -> str:
    """What leaves the app through the clipboard carries no secret (as every report)."""
    return readable(Redactor().text(text))


TREE_FROM_WIDTH = 100  # narrower terminals start with the artifact tree hidden


class OverviewScreen(Screen):
    BINDINGS = bindings("overview")
    AUTO_FOCUS = "#findings"

    app: DoctorApp  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(id="overview")
        self._filter_timer: Timer | None = None
        self.ready = False  # composed and mounted: the app may fill it in
        self.log_grad = False  # grad-norm panels on a log axis (L)

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="summary")
        yield ProgressBar(id="scan-progress", show_eta=False)
        with Horizontal(id="top"):
            yield ArtifactTree("artifacts", id="tree")
            with Vertical(id="table-box"):
                yield Input(placeholder="filter: words  sev:error  rule:TRN*   (enter keeps, esc clears)", id="filter")
                yield FindingsHeader(id="findings-header")
                yield FindingsTable(id="findings")
        with Horizontal(id="detail"):
            with VerticalScroll(id="detail-text"):
                yield FindingDetail(id="finding-detail")
            yield PlotView(id="plot")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(FindingDetail).show(None, empty="Scanning…")
        self.query_one(PlotView).show_plot(None, empty="")
        self.show_summary("scanning…")
        if self.app.size.width < TREE_FROM_WIDTH:  # narrow: the findings get the width (t shows the tree)
            self.query_one(ArtifactTree).display = False
        self.ready = True
        if self.app.report is not None:  # the scan finished before this screen was mounted
            self.load(self.app.report)

    # ----------------------------------------------------------------------------- filling in

    def show_summary(self, state: str = "") -> None:
        """Counts and target, then `state` (scanning…) and the app's modes (◉ watching), which every
        refresh of the bar keeps."""
        table = self.query_one(FindingsTable)
        mode = self.app.state_label
        if table.query_text and self.app.report is not None:  # while a filter is on: how much it shows (up
            shown = f"{table.row_count} of {plural(len(table.rows_all), 'finding')}"  # front: 80 columns)
            mode = f"{mode}  {shown}" if mode else shown
        self.query_one(SummaryBar).show(self.app.target_label, self.app.report, state, mode)

    def show_progress(self, done: int, total: int, path: str) -> None:
        bar = self.query_one("#scan-progress", ProgressBar)
        bar.update(total=max(total, 1), progress=done)
        self.show_summary(f"scanning {done}/{total} {path}")

    def load(self, report: Report) -> None:
        self.query_one("#scan-progress", ProgressBar).display = False
        self.show_summary("")
        self.query_one(ArtifactTree).fill(report, self.app.base)
        table = self.query_one(FindingsTable)
        table.set_rows(make_rows(report.findings, self.app.base))
        if not report.findings:
            self.query_one(FindingDetail).show(None, empty="No findings: every check passed.")

    # ----------------------------------------------------------------------------- events

    def on_findings_table_chosen(self, event: FindingsTable.Chosen) -> None:
        row = event.row
        detail = self.query_one(FindingDetail)
        plot = self.query_one(PlotView)
        if row is None:
            table = self.query_one(FindingsTable)
            detail.show(None, empty="No finding matches the filter." if table.rows_all else "No findings.")
            plot.show_plot(None)
            return
        f = row.finding
        detail.show(f, row.artifact)
        facts = facts_for(self.app.report, f)
        ev = f.evidence or {}
        if plots.plot_kind(ev, facts) is None:
            plot.display = False  # the text gets the whole pane
            self.query_one("#detail").add_class("-noplot")
            plot.show_plot(None, empty="(no plot for this finding)")
            return
        plot.display = True
        self.query_one("#detail").remove_class("-noplot")
        log = self.log_grad
        plot.show_plot(lambda w, h: plots.plot_for(ev, facts, w, h, log_grad=log), caption=plots.caption_for(ev))

    def on_artifact_tree_picked(self, event: ArtifactTree.Picked) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = event.shown
        self._apply_filter()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.12, self._apply_filter)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._apply_filter()
            if not event.value:
                event.input.display = False
            self.query_one(FindingsTable).focus()

    def _apply_filter(self) -> None:
        self.query_one(FindingsTable).set_query(self.query_one("#filter", Input).value)
        self.show_summary()

    # ----------------------------------------------------------------------------- actions

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(FindingsTable).set_query("")
        self.query_one(FindingsTable).focus()
        self.show_summary()

    def action_cycle_sort(self) -> None:
        key = self.query_one(FindingsTable).cycle_sort()
        self.notify(f"sorted by {key}", timeout=1.5)

    def action_reverse_sort(self) -> None:
        t = self.query_one(FindingsTable)
        t.set_sort(t.sort_key, not t.sort_reverse)

    def action_toggle_tree(self) -> None:
        tree = self.query_one(ArtifactTree)
        tree.display = not tree.display

    # ----------------------------------------------------------------------------- open, copy, plot scale

    def _selected(self):
        row = self.query_one(FindingsTable).current()
        return row.finding if row is not None else None

    def action_open_editor(self) -> None:
        """The selected finding's file in $VISUAL/$EDITOR at its line; the app suspends meanwhile."""
        f = self._selected()
        if f is None or f.path is None:
            self.notify("no finding selected", timeout=2)
            return
        if f.path.is_dir():
            self.notify(f"{rel(f.path, self.app.base)} is a folder, not a file", severity="warning", timeout=3)
            return
        argv = editor_command(f.path, f.line or 1)
        try:
            with self.app.suspend():
                code = subprocess.run(argv, check=False).returncode
        except SuspendNotSupported:  # no terminal to hand over (a headless run): the editor runs detached
            code = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL).returncode
        except OSError as exc:
            self.notify(f"cannot start {argv[0]}: {exc.strerror}", title="Editor", severity="error")
            return
        if code:
            self.notify(f"{argv[0]} exited with {code}", severity="warning", timeout=3)

    def action_copy_finding(self) -> None:
        f = self._selected()
        if f is None:
            self.notify("no finding selected", timeout=2)
            return
        where = f"{rel(f.path, self.app.base)}:{f.line or 1}" if f.path is not None else "(settings)"
        text = f"{f.rule} {f.severity.value} {where}" + (f" {f.locator}" if f.locator else "") + f": {f.message}"
        self.app.copy_to_clipboard(redact_text(text))
        self.notify(f"copied {f.rule} to the clipboard", timeout=2)

    def action_copy_path(self) -> None:
        f = self._selected()
        if f is None or f.path is None:
            self.notify("no file to copy", timeout=2)
            return
        self.app.copy_to_clipboard(readable(str(f.path)))
        self.notify(f"copied {rel(f.path, self.app.base)}", timeout=2)

    def action_toggle_log_scale(self) -> None:
        self.log_grad = not self.log_grad
        self.notify(f"grad norm on a {'log' if self.log_grad else 'linear'} scale", timeout=1.5)
        self.on_findings_table_chosen(FindingsTable.Chosen(self.query_one(FindingsTable).current()))


def editor_command(path: Path, line: int) -> list[str]:
    """$VISUAL or $EDITOR (else vi) with the file at `line`: `+N FILE` (vi, vim, nano, emacs, micro, kak),
    `-g FILE:N` for VS Code, `FILE:N` for Sublime."""
    import shlex

    words = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    name = Path(words[0]).name
    if name in ("code", "codium", "code-insiders"):
        return [*words, "-g", f"{path}:{line}"]
    if name in ("subl", "sublime_text"):
        return [*words, f"{path}:{line}"]
    return [*words, f"+{line}", str(path)]
