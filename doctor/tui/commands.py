"""One command table feeds the key bindings, the help screen and the command palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    scope: str  # "app", "overview", "playbook", "jobs", "modal"
    key: str
    action: str
    description: str  # footer text (short)
    help: str  # help screen + command palette text
    show: bool = True
    key_display: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope}.{self.action.split('(')[0]}"

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.description,
            show=self.show,
            key_display=self.key_display,
            tooltip=self.help,
            id=self.id,
        )


COMMANDS: tuple[Command, ...] = (
    Command("app", "question_mark", "help", "Help", "List every key and what it does", key_display="?"),
    Command("app", "p", "playbook", "Playbook", "Walk the triage playbook for the selected rollout"),
    Command("app", "j", "jobs", "Jobs", "Show corrective jobs: progress, live loss, log tail, cancel"),
    Command("app", "w", "toggle_watch", "Watch", "Follow growing training logs; notify on new error findings"),
    Command("app", "e", "export", "Export", "Write the report to a file in any format"),
    Command("app", "r", "rescan", "Rescan", "Scan the rollout again"),
    Command("app", "q", "quit", "Quit", "Quit peft-doctor"),
    Command("overview", "slash", "filter", "Filter", "Filter findings (words, sev:error, rule:TRN*)", key_display="/"),
    Command(
        "overview", "s", "cycle_sort", "Sort", "Sort findings by the next column (severity, rule, artifact, title)"
    ),
    Command("overview", "S", "reverse_sort", "Reverse", "Reverse the sort order", show=False),
    Command("overview", "escape", "clear_filter", "Clear", "Clear the filter and show every finding", show=False),
    Command("overview", "t", "toggle_tree", "Tree", "Show or hide the artifact tree", show=False),
    Command("playbook", "escape", "back", "Back", "Back to the findings"),
    Command("playbook", "left_square_bracket", "rollout(-1)", "Prev", "Previous rollout", key_display="["),
    Command("playbook", "right_square_bracket", "rollout(1)", "Next", "Next rollout", key_display="]"),
    Command("playbook", "l", "launch", "Launch job", "Launch the selected job action (asks for confirmation)"),
    Command("playbook", "u", "undo_answer", "Undo", "Take back the last answer you gave"),
    Command("jobs", "escape", "back", "Back", "Back to the findings"),
    Command("jobs", "c", "cancel_job", "Cancel job", "Cancel the selected job"),
    Command("jobs", "g", "refresh_jobs", "Refresh", "Reload the job list now", show=False),
)


def bindings(scope: str) -> list[Binding]:
    return [c.binding() for c in COMMANDS if c.scope == scope]


def for_scope(*scopes: str) -> list[Command]:
    return [c for c in COMMANDS if c.scope in scopes]


def key_label(c: Command) -> str:
    if c.key_display:
        return c.key_display
    return {"escape": "esc", "slash": "/", "question_mark": "?"}.get(c.key, c.key)
