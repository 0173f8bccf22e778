"""Jobs screen: every job with state, progress, ETA; the selected job's progress bar, live loss plot,
log tail and, once it ends, the before/after comparison. Polls the job stores in a thread worker; the
next poll is scheduled when the previous one finishes (no overlapping polls)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from doctor.playbook.recipe import describe_overrides
from doctor.tui.commands import bindings, plural
from doctor.tui.data import rel
from doctor.tui.jobsview import (
    STATE_GLYPH,
    VERDICT_STYLE,
    EventDigest,
    comparison_lines,
    fmt_eta,
    list_all,
    progress_text,
)
from doctor.tui.widgets import plots
from doctor.tui.widgets.findings import SummaryBar
from doctor.tui.widgets.plot_view import PlotView

if TYPE_CHECKING:
    from doctor.tui.app import DoctorApp


# the table's columns, in order: headers and row cells both come from here
COLUMNS = (
    ("id", "job"),
    ("kind", "kind"),
    ("rollout", "rollout"),
    ("state", "state"),
    ("progress", "progress"),
    ("eta", "ETA"),
)


def _state_cell(job: Any, glyph: str, style: str) -> Text:
    """`✓ succeeded`, or once judged the verdict instead (`✓ not fixed`, `✓ fixed #2` for doctor fix's
    second attempt), in the verdict's colour: a succeeded job that fixed nothing must not read as success."""
    v = job.verdict if job.comparison else None
    if not v:
        return Text(f"{glyph} {job.state}", style=style)
    fix = ((job.spec or {}).get("source") or {}).get("fix_attempt")
    label = v["verdict"].replace("_", " ") + (f" #{fix}" if fix else "")
    return Text(f"{glyph} {label}", style=VERDICT_STYLE.get(v["verdict"], ""))


class JobsSnapshot(Message):
    def __init__(self, jobs: list[tuple[Path, Any]], job_id: str | None, events: list[dict], error: str = "") -> None:
        self.jobs, self.job_id, self.events, self.error = jobs, job_id, events, error
        super().__init__()


class JobsScreen(Screen):
    SCOPE = "jobs"
    BINDINGS = bindings("jobs")
    AUTO_FOCUS = "#jobs-table"

    app: DoctorApp  # type: ignore[assignment]

    def __init__(self, select: str | None = None) -> None:
        super().__init__(id="jobs")
        self.jobs: list[tuple[Path, Any]] = []
        self.selected: str | None = select
        self.digests: dict[str, EventDigest] = {}
        self.ended_seen: set[str] = set()
        self._first = True

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="jobs-summary")
        with Horizontal(id="jobs-body"):
            yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="job-detail"):
                yield Static(id="job-head")
                yield ProgressBar(id="job-progress", show_eta=False)
                yield PlotView(id="job-loss")
                yield Static(id="job-compare")
                yield RichLog(id="job-log", max_lines=500, wrap=True)  # long lines wrap, never cut
        yield Footer(compact=True)

    def on_mount(self) -> None:
        t = self.query_one("#jobs-table", DataTable)
        for key, label in COLUMNS:
            t.add_column(label, key=key)
        self._head("loading…")
        self.query_one("#job-head", Static).update(Text("No job selected.", style="dim"))
        self.query_one("#job-loss", PlotView).show_plot(None, empty="")
        self._detail_visible(False)
        self.poll()

    def _detail_visible(self, on: bool) -> None:
        for sel in ("#job-progress", "#job-loss", "#job-compare", "#job-log"):
            self.query_one(sel).display = on

    def _head(self, state: str = "") -> None:
        running = sum(1 for _, j in self.jobs if j.state in ("queued", "running"))
        t = Text.assemble((" Jobs ", "bold reverse"), (f" {plural(len(self.jobs), 'job')}, {running} active", "bold"))
        if state:
            t.append(f"  {state}", style="italic")
        self.query_one("#jobs-summary", SummaryBar).update(t)

    # ----------------------------------------------------------------------------- polling

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-poll")
    def poll(self) -> None:
        try:
            jobs = list_all(self.app.roots() or [p.resolve() for p in self.app.paths if p.is_dir()])
        except Exception as exc:
            self.post_message(JobsSnapshot([], None, [], f"{type(exc).__name__}: {exc}"))
            return
        job_id = self.selected or (jobs[0][1].id if jobs else None)
        events: list[dict] = []
        for root, job in jobs:
            if job.id == job_id:
                from doctor.jobs.store import JobStore

                after = self.digests[job_id].seq if job_id in self.digests else 0
                events = JobStore(root).events(job_id, after_seq=after)
        self.post_message(JobsSnapshot(jobs, job_id, events))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = event.state in (WorkerState.SUCCESS, WorkerState.ERROR)
        if event.worker.group == "jobs-poll" and done and self.is_attached:
            self.set_timer(self.app.job_poll_s, self.poll)

    def on_jobs_snapshot(self, msg: JobsSnapshot) -> None:
        if msg.error:
            self._head(f"cannot read jobs: {msg.error}")
            return
        self.jobs = msg.jobs
        if self.selected is None:
            self.selected = msg.job_id
        self._fill_table()
        if msg.job_id is not None and msg.job_id == self.selected:
            digest = self.digests.setdefault(msg.job_id, EventDigest())
            lines = digest.feed(msg.events)
            if lines:
                for line in lines:
                    self.query_one("#job-log", RichLog).write(line)
        self._show_selected()
        self._head()
        self._notify_ended()

    def _notify_ended(self) -> None:
        for _, job in self.jobs:
            if job.done and job.id not in self.ended_seen:
                if not self._first:
                    v = job.verdict
                    sev = (
                        "information"
                        if job.state == "succeeded" and (v is None or v["verdict"] == "fixed")
                        else ("warning" if job.state in ("cancelled", "succeeded") else "error")
                    )
                    said = f"{job.state}, {v['verdict'].replace('_', ' ')}" if v else job.state
                    self.app.notify(f"job {job.id} {said}", title="Job ended", severity=sev, timeout=5)
                self.ended_seen.add(job.id)
        self._first = False

    def _fill_table(self) -> None:
        t = self.query_one("#jobs-table", DataTable)
        keep = self.selected
        t.clear()
        for root, j in self.jobs:
            glyph, style = STATE_GLYPH.get(j.state, ("?", ""))
            cells = {
                "id": Text(j.id, style="bold"),
                "kind": j.kind,
                "rollout": self.app.rollout_label(root),
                "state": _state_cell(j, glyph, style),
                "progress": progress_text(j.step, j.max_steps, j.state),
                "eta": fmt_eta(j.eta_s) if j.state == "running" else "",
            }
            t.add_row(*(cells[key] for key, _ in COLUMNS), key=j.id)
        if keep is not None:
            idx = next((i for i, (_, j) in enumerate(self.jobs) if j.id == keep), None)
            if idx is not None and t.cursor_row != idx:
                t.move_cursor(row=idx, animate=False)
        if not self.jobs:
            self.query_one("#job-head", Static).update(
                Text("No jobs yet. Launch one from the playbook screen (p, then l on a job action).", style="dim")
            )

    def current(self) -> tuple[Path, Any] | None:
        return next(((r, j) for r, j in self.jobs if j.id == self.selected), None)

    def _show_selected(self) -> None:
        cur = self.current()
        if cur is None:
            self._detail_visible(False)
            return
        self._detail_visible(True)
        root, j = cur
        glyph, style = STATE_GLYPH.get(j.state, ("?", ""))
        head = Text()
        head.append(f"{glyph} {j.state}", style=style)
        head.append(f"  {j.kind}  ", style="bold")
        head.append(j.id, style="dim")
        v = j.verdict
        if v:
            head.append(f"  verdict: {v['verdict'].replace('_', ' ')}", style=VERDICT_STYLE.get(v["verdict"], ""))
        fix = ((j.spec or {}).get("source") or {}).get("fix_attempt")
        if fix:
            head.append(f"  (doctor fix attempt {fix})", style="bold")
        head.append(f"\nrollout {self.app.rollout_label(root)}")
        over = (j.spec or {}).get("overrides") or {}
        if over:
            head.append("   overrides: " + describe_overrides(over, j.spec.get("recipe")), style="magenta")
        if j.phase:
            head.append(f"   phase: {j.phase}", style="dim")
        d = self.digests.get(j.id)
        examples = d.examples if d is not None else None
        if j.state == "running" and examples and not j.max_steps:  # a re-eval counts examples, not steps
            head.append(f"   examples {examples[0]}/{examples[1]}   ETA {fmt_eta(j.eta_s)}")
        elif j.state == "running":
            head.append(f"   step {j.step}/{j.max_steps or '?'}   ETA {fmt_eta(j.eta_s)}")
        if j.error:
            head.append(f"\n{j.error}", style="bold red")
        if j.outputs:
            shown = [
                f"{k}={rel(Path(str(v)), root) if '/' in str(v) else v}"
                for k, v in j.outputs.items()
                if not isinstance(v, dict)
            ]
            head.append("\noutputs: " + ", ".join(shown), style="dim")
        self.query_one("#job-head", Static).update(head)
        bar = self.query_one("#job-progress", ProgressBar)
        if examples and not j.max_steps:
            bar.update(total=examples[1], progress=examples[1] if j.state == "succeeded" else examples[0])
        elif j.max_steps:
            bar.update(total=j.max_steps, progress=j.max_steps if j.state == "succeeded" else j.step)
        elif j.state == "succeeded":
            bar.update(total=1, progress=1)
        else:
            bar.update(total=None)
        d = self.digests.get(j.id)
        if d and d.loss:
            steps, loss = list(d.steps), list(d.loss)
            self.query_one("#job-loss", PlotView).show_plot(lambda w, h: plots.loss_curve(steps, loss, w, h))
        else:
            if not j.done:
                empty = "no loss reported yet"
            elif j.kind == "retrain":
                empty = "no loss was reported"
            else:
                empty = f"a {j.kind} job does not train: no loss curve"
            self.query_one("#job-loss", PlotView).show_plot(None, empty=empty)
        self.query_one("#job-compare", Static).update(self._comparison(j))

    def _comparison(self, j: Any) -> Any:
        if not j.done:
            return Text("")
        if isinstance(j.comparison, dict) and "resolved" in j.comparison:
            try:
                from doctor.render.jobs_report import render_comparison

                lines = render_comparison(j.comparison)
            except Exception:
                lines = []
            if lines:
                out = Text()
                v = j.verdict
                if v:
                    out.append(v["why"] + "\n", style=VERDICT_STYLE.get(v["verdict"], ""))
                out.append("before → after\n", style="bold")
                style = ""
                for ln in lines:
                    head = ln.strip()
                    if head.endswith(":") and not head.startswith("training"):
                        style = {"Resolved:": "green", "New:": "red", "Still present:": "yellow"}.get(head, "")
                    elif not ln.startswith("    "):
                        style = ""
                    out.append(ln + "\n", style=style)
                return out
        rows = comparison_lines(j.comparison)
        if not rows:
            return Text("no before/after comparison recorded" if j.state == "succeeded" else "", style="dim")
        table = Table(title="before → after", title_style="bold", expand=False, box=None, padding=(0, 1))
        for col in ("metric", "before", "after", "change"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for name, b, a, ch in rows[:30]:
            style = "green" if ch.startswith("+") else ("red" if ch.startswith("-") else "")
            table.add_row(name, b, a, Text(ch, style=style))
        return table

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        if key and key != self.selected:
            self.selected = key
            self.query_one("#job-log", RichLog).clear()
            d = self.digests.get(key)
            if d:
                for line in d.log:
                    self.query_one("#job-log", RichLog).write(line)
            self._show_selected()
            self.poll()

    # ----------------------------------------------------------------------------- actions

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh_jobs(self) -> None:
        self.poll()

    def action_cancel_job(self) -> None:
        cur = self.current()
        if cur is None:
            self.notify("no job selected", timeout=2)
            return
        root, j = cur
        if j.done:
            self.notify(f"job {j.id} already {j.state}", timeout=2)
            return
        from doctor.tui.screens.ask import AskScreen

        where = f"step {j.step}/{j.max_steps}" if j.max_steps else j.state
        question = f"Cancel {j.kind} job {j.id} ({where})? Its work so far is lost."

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.cancel_job(j.id, root)

        self.app.push_screen(AskScreen(question, yes="Cancel job", no="Keep running"), answered)
