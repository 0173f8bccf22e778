"""Confirmation before a job starts: shows the exact spec that will run."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmJobScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "confirm", "Launch", tooltip="Launch this job", id="confirm.launch"),
        Binding("n,escape", "cancel", "Cancel", tooltip="Do not launch", id="confirm.cancel"),
    ]

    def __init__(self, spec: dict[str, Any], text: str = "") -> None:
        super().__init__(id="confirm-job")
        self.spec = spec
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(
                Text.assemble(("Launch this job?  ", "bold"), (f"{self.spec.get('kind')} — {self.text}", "")),
                id="confirm-title",
            )
            with VerticalScroll(id="confirm-spec"):
                yield Static(Syntax(json.dumps(self.spec, indent=2, default=str), "json", word_wrap=True))
            with Horizontal(classes="buttons"):
                yield Button("Launch (y)", id="launch", variant="warning")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "launch")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
