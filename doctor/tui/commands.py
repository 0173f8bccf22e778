"""One command table feeds the key bindings, the help screen and the command palette.

Footers stay within 80 columns: an app-wide command shows in the footer only on the screens named in
its `footer`; elsewhere the screen re-binds its key hidden (the key still works, and help and the
palette still list it)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    scope: str  # "app", "overview", "playbook", "jobs", "lab", "modal"
    key: str
    action: str
    description: str  # footer text (short)
    help: str  # help screen + command palette text
    show: bool = True
    key_display: str | None = None
    name: str = ""  # command palette title (default: description)
    footer: tuple[str, ...] = ("overview", "playbook", "jobs")  # app scope: screens whose footer shows it

    @property
    def title(self) -> str:
        return self.name or self.description

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
    Command(
        "app",
        "p",
        "playbook",
        "Playbook",
        "Walk the triage playbook for the selected rollout",
        footer=("overview", "jobs"),
    ),
    Command(
        "app",
        "j",
        "jobs",
        "Jobs",
        "Show corrective jobs: progress, live loss, log tail, cancel",
        footer=("overview", "playbook"),
    ),
    Command(
        "app",
        "w",
        "toggle_watch",
        "Watch",
        "Follow growing training logs; notify on findings new since watching began",
        name="Watch mode on/off",
        footer=("overview",),
    ),
    Command(
        "app", "e", "export", "Export", "Write the report to a file in any format", name="Export", footer=("overview",)
    ),
    Command("app", "r", "rescan", "Rescan", "Scan the rollout again", footer=("overview",)),
    Command(
        "app",
        "L",
        "lab",
        "Lab",
        "Show the doctor lab: prompt-only vs LoRA ranks vs QLoRA, the chosen variant and its canary",
        footer=(),
    ),
    Command("app", "q", "quit", "Quit", "Quit peft-doctor"),
    Command("overview", "slash", "filter", "Filter", "Filter findings (words, sev:error, rule:TRN*)", key_display="/"),
    Command(
        "overview",
        "s",
        "cycle_sort",
        "Sort",
        "Sort findings by the next column (severity, rule, artifact, title)",
        show=False,
        name="Sort findings",
    ),
    Command("overview", "S", "reverse_sort", "Reverse", "Reverse the sort order", show=False, name="Reverse sort"),
    Command(
        "overview",
        "escape",
        "clear_filter",
        "Clear",
        "Clear the filter and show every finding",
        show=False,
        name="Clear filter",
    ),
    Command("overview", "t", "toggle_tree", "Tree", "Show or hide the artifact tree", show=False, name="Artifact tree"),
    Command(
        "overview",
        "o",
        "open_editor",
        "Open",
        "Open the selected finding's file in $EDITOR at its line",
        show=False,
        name="Open in editor",
    ),
    Command(
        "overview",
        "y",
        "copy_finding",
        "Copy",
        "Copy the selected finding (rule, file:line, message) to the clipboard (OSC 52)",
        show=False,
        name="Copy finding",
    ),
    Command(
        "overview",
        "Y",
        "copy_path",
        "Copy path",
        "Copy the selected finding's file path to the clipboard (OSC 52)",
        show=False,
        name="Copy path",
    ),
    Command(
        "overview",
        "G",  # not L: L opens the lab from every screen
        "toggle_log_scale",
        "Log scale",
        "Grad-norm plots: switch the y axis between linear and log scale",
        show=False,
        name="Log scale on/off",
    ),
    Command("playbook", "escape", "back", "Back", "Back to the findings"),
    Command(
        "playbook",
        "left_square_bracket",
        "rollout(-1)",
        "Prev",
        "Triage the previous rollout",
        key_display="[",
        name="Previous rollout",
    ),
    Command(
        "playbook",
        "right_square_bracket",
        "rollout(1)",
        "Next",
        "Triage the next rollout",
        key_display="]",
        name="Next rollout",
    ),
    Command(
        "playbook", "l", "launch", "Launch", "Launch the selected job action (asks for confirmation)", name="Launch job"
    ),
    Command("playbook", "u", "undo_answer", "Undo", "Take back the last answer you gave", name="Undo answer"),
    Command("jobs", "escape", "back", "Back", "Back to the findings"),
    Command("jobs", "c", "cancel_job", "Cancel job", "Cancel the selected job"),
    Command("jobs", "g", "refresh_jobs", "Refresh", "Reload the job list now", show=False, name="Refresh jobs"),
    Command("lab", "escape", "back", "Back", "Back to the findings"),
    Command(
        "lab",
        "left_square_bracket",
        "switch_lab(-1)",
        "Prev",
        "Show the previous lab",
        key_display="[",
        name="Previous lab",
    ),
    Command(
        "lab", "right_square_bracket", "switch_lab(1)", "Next", "Show the next lab", key_display="]", name="Next lab"
    ),
    Command("lab", "g", "refresh_lab", "Refresh", "Reload the lab report now", show=False, name="Refresh lab"),
)


def bindings(scope: str) -> list[Binding]:
    """The scope's own bindings; for a screen scope also hidden re-bindings of the app commands its
    footer leaves out (the innermost binding of a key decides whether the footer shows it)."""
    own = [c.binding() for c in COMMANDS if c.scope == scope]
    if scope == "app":
        return own
    taken = {c.key for c in COMMANDS if c.scope == scope}
    hidden = [
        Binding(
            c.key,
            f"app.{c.action}",
            c.description,
            show=False,
            key_display=c.key_display,
            tooltip=c.help,
            id=f"{scope}.app-{c.action}",
        )
        for c in COMMANDS
        if c.scope == "app" and scope not in c.footer and c.key not in taken
    ]
    return own + hidden


def for_scope(*scopes: str) -> list[Command]:
    return [c for c in COMMANDS if c.scope in scopes]


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`1 finding`, `2 findings`, `0 findings` (`many` for irregular plurals)."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"


def key_label(c: Command) -> str:
    if c.key_display:
        return c.key_display
    return {"escape": "esc", "slash": "/", "question_mark": "?"}.get(c.key, c.key)
