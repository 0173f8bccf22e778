"""Export the report in any reporter format to a file."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from doctor.model import Report

EXTENSIONS = {
    "console": "txt",
    "json": "json",
    "sarif": "sarif",
    "junit": "xml",
    "gitlab": "json",
    "github": "txt",
    "markdown": "md",
}


def default_name(fmt: str) -> str:
    return {"gitlab": "gl-code-quality.json", "sarif": "doctor.sarif"}.get(fmt, f"doctor-report.{EXTENSIONS[fmt]}")


def write_report(report: Report, fmt: str, path: Path) -> Path:
    """Render with the same reporters as `doctor check --format` and write atomically."""
    from doctor import __version__
    from doctor.report import RenderContext, render
    from probes import rule_registry

    text = render(report, fmt, RenderContext(rules=rule_registry(), version=__version__))
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class ExportScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without writing", id="export.cancel")]

    def __init__(self, report: Report) -> None:
        super().__init__(id="export")
        self.report = report

    def compose(self) -> ComposeResult:
        from doctor.report import FORMATS

        with Vertical(id="export-box", classes="dialog"):
            yield Static(Text("Export the report", style="bold"))
            yield Label("Format")
            yield Select([(f, f) for f in FORMATS], value="json", allow_blank=False, id="export-format")
            yield Label("File")
            yield Input(value=default_name("json"), id="export-path")
            yield Static("", id="export-status")
            with Horizontal(classes="buttons"):
                yield Button("Write", id="write", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        box = self.query_one("#export-path", Input)
        names = {default_name(f) for f in EXTENSIONS}
        if not box.value or box.value in names:
            box.value = default_name(str(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.write()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "write":
            self.write()
        else:
            self.dismiss(None)

    def write(self) -> None:
        fmt = str(self.query_one("#export-format", Select).value)
        raw = self.query_one("#export-path", Input).value.strip()
        if not raw:
            self.query_one("#export-status", Static).update(Text("give a file name", style="red"))
            return
        try:
            path = write_report(self.report, fmt, Path(raw))
        except Exception as exc:
            self.query_one("#export-status", Static).update(Text(f"cannot write: {exc}", style="bold red"))
            return
        self.app.notify(f"wrote {fmt} report to {path}", title="Exported", timeout=4)
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
