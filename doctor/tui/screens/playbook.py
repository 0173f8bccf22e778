"""Playbook screen: the path walked so far with the evidence at each node, the pending question with its
choices, the diagnosis with ranked causes and the actions; job actions launch after a confirmation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, OptionList, Static, Tree
from textual.widgets.option_list import Option

from doctor.playbook.recipe import describe
from doctor.tui.commands import bindings
from doctor.tui.data import SEVERITY_STYLE
from doctor.tui.widgets.findings import SummaryBar

if TYPE_CHECKING:
    from doctor.tui.app import DoctorApp

ANSWER_STYLE = {"yes": "bold red", "no": "green", "unknown": "yellow"}


class TriageReady(Message):
    def __init__(self, root: Path, triage: Any, error: str | None = None) -> None:
        self.root, self.triage, self.error = root, triage, error
        super().__init__()


def _fit_question(question: str, room: int) -> str:
    q = question.strip()
    if len(q) <= room:
        return q
    return q[: max(8, room - 2)].rstrip(" ,;:(") + "…" + ("?" if q.endswith("?") else "")


class PathTree(Tree):
    """The walked path. Labels are shortened to the tree's width, so they are redrawn when the width
    changes (the first layout pass can report a transient width)."""

    labelled_width = 0

    def on_resize(self) -> None:
        screen = self.screen
        if self.size.width != self.labelled_width and getattr(screen, "triage", None) is not None:
            screen._show_path()


def step_label(step: Any, width: int = 0) -> Text:
    """A step of the walked path. Answered: `question → answer` (how it was answered, dim), so it reads
    as the question and its answer; `width` (0: no limit) shortens the question, never the answer."""
    if step.how == "playbook":
        return Text.assemble(("▸ ", "bold"), (step.question, "bold"))
    t = Text()
    if step.how == "pending":
        t.append(" ? ", style="bold reverse")
        t.append(" ")
        t.append(_fit_question(step.question, width - 4) if width else step.question, style="bold")
        return t
    how = "" if step.how == "evidence" else ("your answer" if step.how == "user" else str(step.how))
    suffix = f" → {step.answer}"
    question = step.question
    if width:
        room = width - len(suffix)
        # the question keeps at least 60% of the room; how it was answered gets what is left
        q_room = max(room - len(how) - 4 if how else room, min(len(question), int(room * 0.6)))
        question = _fit_question(question, q_room)
        how_room = room - len(question) - 4
        if how and how_room < len(how):
            how = how[: how_room - 1] + "…" if how_room >= 6 else ""
    t.append(question)
    t.append(" → ", style="dim")
    t.append(str(step.answer), style=ANSWER_STYLE.get(step.answer, "bold"))
    if how:
        t.append(f"  ({how})", style="italic dim")
    return t


class PlaybookScreen(Screen):
    SCOPE = "playbook"
    BINDINGS = bindings("playbook")
    AUTO_FOCUS = "#actions"

    app: DoctorApp  # type: ignore[assignment]

    def __init__(self, root: Path) -> None:
        super().__init__(id="playbook")
        self.root = root
        self.triage: Any = None
        self.actions: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="pb-summary")
        with Horizontal(id="pb-body"):
            yield PathTree("triage", id="pb-path")
            with VerticalScroll(id="pb-side"):
                with Vertical(id="pb-question"):
                    yield Static(id="pb-question-text")
                    yield Horizontal(id="pb-choices")
                yield Static(id="pb-diagnosis")
                yield Static("Actions", id="pb-actions-title", classes="section-title")
                yield OptionList(id="actions")
                yield Static(id="pb-causes")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#pb-question").display = False
        self._title("walking the playbook…")
        self.walk()

    # ----------------------------------------------------------------------------- walking

    @property
    def answers(self) -> dict[str, str]:
        return self.app.answers.setdefault(str(self.root), {})

    def _title(self, state: str = "") -> None:
        roots = self.app.roots()
        pos = f"  rollout {roots.index(self.root) + 1}/{len(roots)}" if self.root in roots else ""
        t = Text.assemble(
            (" Playbook ", "bold reverse"), (f" {self.app.rollout_label(self.root)}", "bold"), (pos, "dim")
        )
        if state:
            t.append(f"  {state}", style="italic")
        self.query_one("#pb-summary", SummaryBar).update(t)

    @work(thread=True, exclusive=True, exit_on_error=False, group="triage")
    def walk(self) -> None:
        from doctor.playbook.triage import run_triage

        report = self.app.report
        root, answers = self.root, dict(self.answers)
        try:
            results = run_triage(list(self.app.paths), self.app.settings, answers, interactive=True, report=report)
        except Exception as exc:
            self.post_message(TriageReady(root, None, f"{type(exc).__name__}: {exc}"))
            return
        match = next((r for r in results if r.root.resolve() == root.resolve()), results[0] if results else None)
        self.post_message(TriageReady(root, match.triage if match else None))

    def on_triage_ready(self, msg: TriageReady) -> None:
        if msg.root != self.root:
            return
        if msg.error or msg.triage is None:
            self._title("")
            self.query_one("#pb-diagnosis", Static).update(Text(f"Triage failed: {msg.error}", style="bold red"))
            return
        self.triage = msg.triage
        self._title("")
        self._show_path()
        self._show_question()
        self._show_diagnosis()

    def _show_path(self) -> None:
        tree: Tree = self.query_one("#pb-path", Tree)
        tree.clear()
        tree.root.set_label(Text("triage", style="bold"))
        by_rule = self._titles()
        tree.labelled_width = tree.size.width
        width = (tree.size.width or 78) - 2  # as if the scrollbar shows: the same labels either way
        stack = [(tree.root, "triage")]
        last = None
        for step in self.triage.path:
            while len(stack) > 1 and step.playbook != stack[-1][1] and step.how != "playbook":
                stack.pop()
            parent = stack[-1][0]
            room = width - 4 * len(stack) - 6
            if step.how == "playbook":
                node = parent.add(step_label(step), expand=True)
                stack.append((node, step.question.removeprefix("visit ").strip()))
                last = node
                continue
            if not step.evidence:
                last = parent.add_leaf(step_label(step, room))
                continue
            node = parent.add(step_label(step, room), expand=True)
            for rid in step.evidence:
                sev, title = by_rule.get(rid, ("", ""))
                node.add_leaf(Text.assemble((f"{rid} ", SEVERITY_STYLE.get(sev, "bold")), title))
            last = node
        for leaf in self.triage.leaves:
            (stack[-1][0] if stack else tree.root).add_leaf(Text.assemble(("◆ ", "bold green"), leaf))
        tree.root.expand()
        if last is not None:
            tree.move_cursor(last)

    def _titles(self) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        report = self.app.report
        for f in report.findings if report else []:
            out.setdefault(f.rule, (f.severity.value, f.title))
        return out

    def _show_question(self) -> None:
        box = self.query_one("#pb-question")
        pending = self.triage.pending
        box.display = pending is not None
        choices = self.query_one("#pb-choices", Horizontal)
        choices.remove_children()
        if pending is None:
            return
        self.query_one("#pb-question-text", Static).update(
            Text.assemble(
                ("? ", "bold reverse"),
                (f" {pending.question}\n", "bold"),
                ("The evidence cannot answer this; pick what you know (keys 1–9).", "dim"),
            )
        )
        opts = [*pending.choices, "unknown"] if "unknown" not in pending.choices else list(pending.choices)
        choices.mount_all(
            Button(f"{i}. {c}", id=f"choice-{i}", name=c, variant="primary" if c != "unknown" else "default")
            for i, c in enumerate(opts, 1)
        )

    def _show_diagnosis(self) -> None:
        t = self.triage
        text = Text()
        text.append("Diagnosis", style="bold underline")
        text.append(f"  ({t.leaf})\n" if t.leaf else "\n", style="dim")
        if t.pending is not None and not t.causes:
            text.append("Waiting for your answer above.\n", style="italic")
        else:
            text.append((t.diagnosis or "no diagnosis") + "\n")
        text.rstrip()
        causes = Text()
        if t.causes:
            causes.append("Likely causes (ranked)\n", style="bold")
            for i, c in enumerate(t.causes, 1):
                bar = "█" * max(1, round(c.score * 10))
                causes.append(f" {i}. ", style="bold")
                causes.append(f"{c.cause} ", style="bold cyan")
                causes.append(f"{bar} {c.score:.2f}", style="magenta")
                if c.evidence:
                    causes.append(f"  [{', '.join(c.evidence)}]", style="dim")
                if c.text:
                    causes.append(f"\n    {c.text}", style="")
                causes.append("\n")
        self.query_one("#pb-causes", Static).update(causes)
        self.query_one("#pb-diagnosis", Static).update(text)
        ol = self.query_one("#actions", OptionList)
        ol.clear_options()
        self.actions = list(t.actions)
        for i, a in enumerate(self.actions):
            label = Text()
            label.append(f"[{a['kind']}] ", style="bold magenta" if a["kind"] == "job" else "bold")
            label.append(a.get("text", ""))
            if a["kind"] == "job":
                job = a.get("job") or {}
                over = ", ".join(f"{k}={describe(v)}" for k, v in (job.get("overrides") or {}).items())
                ready = self._readiness(job)
                if ready.ok:
                    label.append(f"\n    ▶ {job.get('kind')} {over}   (enter or l to launch)", style="magenta")
                else:  # offered only where it can run: else what is missing and the init line
                    label.append(f"\n    ✗ cannot run here yet: missing {', '.join(ready.missing)}", style="yellow")
                    label.append(f"\n    {ready.hint}", style="dim")
            ol.add_option(Option(label, id=f"action-{i}"))
        if not self.actions:
            ol.add_option(Option(Text("no actions", style="dim"), disabled=True))
        jobs = [i for i, a in enumerate(self.actions) if a.get("kind") == "job" and self._readiness(a.get("job")).ok]
        title = Text("Actions", style="bold underline")
        if jobs:
            title.append("   enter or l launches the highlighted job", style="dim")
            ol.highlighted = jobs[0]
        self.query_one("#pb-actions-title", Static).update(title)
        if t.pending is None and self.actions:  # the answer is in: the actions are what comes next
            ol.focus()
            self.call_after_refresh(self._reveal_action)

    @on(OptionList.OptionHighlighted, "#actions")
    def _action_moved(self, event: OptionList.OptionHighlighted) -> None:
        self._reveal_action()

    def _reveal_action(self) -> None:
        """Scroll the side pane (not just the list) so the highlighted action shows, with the Actions
        title above it when both fit: on a short terminal the job to launch is never below the fold."""
        from textual.geometry import Region

        ol = self.query_one("#actions", OptionList)
        side = self.query_one("#pb-side", VerticalScroll)
        if ol.highlighted is None or not ol.is_mounted:
            return
        ol.scroll_to_highlight()
        try:
            y = ol._index_to_line[ol.highlighted]
            h = ol._heights[ol.highlighted]
        except (KeyError, IndexError, AttributeError):
            return
        top = ol.virtual_region.y + ol.styles.gutter.top + y - round(ol.scroll_offset.y)
        title = self.query_one("#pb-actions-title").virtual_region.y
        pane = side.scrollable_content_region.height
        start = title if top + h - title <= pane else top
        side.scroll_to_region(Region(0, start, 1, top + h - start), animate=False, immediate=True, force=True)

    # ----------------------------------------------------------------------------- answering

    @on(Button.Pressed, "#pb-choices Button")
    def _choice(self, event: Button.Pressed) -> None:
        self.answer(event.button.name or "unknown")

    def answer(self, choice: str) -> None:
        pending = self.triage.pending if self.triage else None
        if pending is None:
            return
        self.answers[f"{pending.playbook}.{pending.node}"] = choice
        self._title("walking…")
        self.walk()

    def on_key(self, event) -> None:
        if event.key.isdigit() and self.triage is not None and self.triage.pending is not None:
            buttons = list(self.query("#pb-choices Button"))
            i = int(event.key) - 1
            if 0 <= i < len(buttons):
                event.stop()
                self.answer(buttons[i].name or "unknown")

    def action_undo_answer(self) -> None:
        if not self.answers:
            self.notify("no answers to take back", timeout=2)
            return
        last = list(self.answers)[-1]
        self.answers.pop(last)
        self.walk()

    def action_rollout(self, delta: int) -> None:
        roots = self.app.roots()
        if not roots:
            return
        i = roots.index(self.root) if self.root in roots else 0
        self.root = roots[(i + delta) % len(roots)]
        self.app.remember_playbook(self.root)
        self.triage = None
        self._title("walking…")
        self.walk()

    def action_back(self) -> None:
        self.app.pop_screen()

    # ----------------------------------------------------------------------------- launching

    def selected_action(self) -> dict[str, Any] | None:
        ol = self.query_one("#actions", OptionList)
        if ol.highlighted is None or ol.highlighted >= len(self.actions):
            return None
        return self.actions[ol.highlighted]

    @on(OptionList.OptionSelected, "#actions")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.action_launch()

    def _readiness(self, job: dict[str, Any] | None) -> Any:
        from doctor.jobs.readiness import Readiness, job_readiness

        try:
            return job_readiness(self.root, job)
        except Exception as exc:  # a readiness check must never break the screen
            return Readiness(False, [str(exc)], "")

    def action_launch(self) -> None:
        action = self.selected_action()
        if action is not None and action.get("kind") == "job":
            ready = self._readiness(action.get("job"))
            if not ready.ok:
                self.notify(
                    f"missing {', '.join(ready.missing)}; {ready.hint}", title="This job cannot run here yet",
                    severity="warning", timeout=8,
                )  # fmt: skip
                return
        if action is None or action.get("kind") != "job":
            jobs = [i for i, a in enumerate(self.actions) if a.get("kind") == "job"]
            if not jobs:
                self.notify("this diagnosis has no job action", severity="warning", timeout=3)
                return
            if action is None or len(jobs) == 1:
                action = self.actions[jobs[0]]
                self.query_one("#actions", OptionList).highlighted = jobs[0]
            else:
                self.notify("highlight a [job] action to launch it", timeout=3)
                return
        try:
            from doctor.jobs.spec import spec_from_action

            spec = spec_from_action(self.root, action)
        except ModuleNotFoundError:
            self.notify("jobs are not available in this install", severity="error")
            return
        except Exception as exc:
            self.notify(str(exc), title="Cannot build the job spec", severity="error", timeout=8)
            return
        from doctor.tui.screens.confirm import ConfirmJobScreen

        def done(ok: bool | None) -> None:
            if ok:
                self.app.launch_job(spec, self.root)

        self.app.push_screen(ConfirmJobScreen(spec, action.get("text", "")), done)


def spec_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, default=str)
