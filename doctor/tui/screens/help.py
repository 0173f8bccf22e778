"""Every key, by screen, from the same command table as the bindings and the command palette."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from doctor.tui.commands import COMMANDS, key_label

SCOPES = (
    ("app", "Everywhere"),
    ("overview", "Findings (first screen)"),
    ("playbook", "Playbook (p)"),
    ("jobs", "Jobs (j)"),
    ("lab", "Lab (L)"),
    ("watch", "Watch mode (w)"),
)

EXTRA = (
    ("Everywhere", "ctrl+p", "Command palette: every action by name"),
    ("Findings (first screen)", "↑ ↓ / click", "Select a finding: its detail and plot show below"),
    ("Findings (first screen)", "enter (tree)", "On an artifact in the tree: filter the findings to it"),
    ("Findings (first screen)", "click header", "Sort by that column (again: reverse)"),
    ("Playbook (p)", "1–9", "Answer the pending question"),
    ("Playbook (p)", "enter", "Launch the highlighted job action"),
    ("Watch mode (w)", "w", "Start or stop following the training logs (from the findings screen)"),
    ("Watch mode (w)", "◉ watching", "Shown in the summary bar while watch mode is on"),
    ("Watch mode (w)", "new data", "Only findings new since watching began are added, with a toast"),
    ("Watch mode (w)", "r", "A rescan keeps watching, from the new scan"),
)


def _table(title: str) -> Table:
    table = Table(
        title=title, title_justify="left", title_style="bold underline", show_header=False, box=None, padding=(0, 1)
    )
    table.add_column("key", style="bold cyan", no_wrap=True, min_width=12)
    table.add_column("what it does")
    return table


def help_table() -> Group:
    """One table per screen: every key from the command table, plus mouse and answer keys."""
    parts = []
    for scope, title in SCOPES:
        table = _table(title)
        for c in COMMANDS:
            if c.scope == scope:
                table.add_row(key_label(c), c.help)
        for t, key, text in EXTRA:
            if t == title:
                table.add_row(key, text)
        parts += [table, Text("")]
    sev = _table("Severity")
    sev.add_row(Text("✗ error", style="bold red"), "fails `doctor check` by default")
    sev.add_row(Text("! warning", style="yellow"), "worth fixing before rollout")
    sev.add_row(Text("i info", style="cyan"), "context")
    sev.add_row(Text("✓", style="green"), "artifact with no findings")
    parts.append(sev)
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", tooltip="Close help", id="help.close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(Text("peft-doctor keys   (esc closes)", style="bold"), id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(), id="help-table")

    def action_close(self) -> None:
        self.dismiss(None)


__all__ = ["HelpScreen", "help_table"]
