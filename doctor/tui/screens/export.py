"""Export the report in any reporter format to a file."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from doctor.core.model import Report

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
    from doctor.render import RenderContext, render
    from probes import rule_registry

    text = render(report, fmt, RenderContext(rules=rule_registry(), version=__version__))
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def auto_named(value: str) -> bool:
    """Whether a file name is still one the dialog chose (empty, or a format's default name)."""
    return not value.strip() or Path(value.strip()).name in {default_name(f) for f in EXTENSIONS}


def renamed_for(value: str, fmt: str) -> str:
    """The file name for `fmt`: a default name gets the format's default name (keeping its folder);
    a name the user typed is kept."""
    if not auto_named(value):
        return value
    folder = Path(value.strip()).parent if value.strip() else Path(".")
    return default_name(fmt) if folder == Path(".") else (folder / default_name(fmt)).as_posix()


class ExportScreen(ModalScreen[Path | None]):
    """Pick a format (the list has focus; moving in it renames a default file name to match), enter
    moves to the file name, enter there writes. The line under the file name shows the full path."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without writing", id="export.cancel")]

    def __init__(self, report: Report) -> None:
        super().__init__(id="export")
        self.report = report

    def compose(self) -> ComposeResult:
        from doctor.render import FORMATS

        with Vertical(id="export-box", classes="dialog"):
            yield Static(Text("Export the report", style="bold"))
            yield Label("Format  (↑↓ pick, enter next)")
            yield OptionList(*[Option(f, id=f) for f in FORMATS], id="export-format")
            yield Label("File  (enter writes)")
            yield Input(value=default_name("json"), id="export-path")
            yield Static("", id="export-status")
            with Horizontal(classes="buttons"):
                yield Button("Write", id="write", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        from doctor.render import FORMATS

        formats = self.query_one("#export-format", OptionList)
        formats.highlighted = list(FORMATS).index("json")
        formats.focus()
        self._show_target()

    @property
    def fmt(self) -> str:
        formats = self.query_one("#export-format", OptionList)
        i = formats.highlighted
        return str(formats.get_option_at_index(i).id) if i is not None else "json"

    def _show_target(self) -> None:
        raw = self.query_one("#export-path", Input).value.strip()
        target = ""
        if raw:  # where it goes: ./… under the working folder (the toast after writing gives the full path)
            full = Path(raw).expanduser().resolve()
            try:
                target = "./" + full.relative_to(Path.cwd().resolve()).as_posix()
            except ValueError:
                target = str(full)
        width = max(20, self.query_one("#export-status").size.width or 70) - len(self.fmt) - 3
        if len(target) > width:  # keep the file name: shorten the folder in the middle
            keep = width - 1
            target = target[: keep // 2] + "…" + target[-(keep - keep // 2) :]
        shown = Text(f"{self.fmt} → {target}", style="dim", no_wrap=True) if raw else Text("")
        self.query_one("#export-status", Static).update(shown)

    @on(OptionList.OptionHighlighted, "#export-format")
    def _format_moved(self, event: OptionList.OptionHighlighted) -> None:
        box = self.query_one("#export-path", Input)
        box.value = renamed_for(box.value, self.fmt)
        self._show_target()

    @on(OptionList.OptionSelected, "#export-format")
    def _format_chosen(self, event: OptionList.OptionSelected) -> None:
        box = self.query_one("#export-path", Input)
        box.focus()
        box.cursor_position = len(box.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_target()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.write()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "write":
            self.write()
        else:
            self.dismiss(None)

    def write(self) -> None:
        fmt = self.fmt
        raw = self.query_one("#export-path", Input).value.strip()
        if not raw:
            self.query_one("#export-status", Static).update(Text("give a file name", style="red"))
            return
        try:
            path = write_report(self.report, fmt, Path(raw)).resolve()
        except Exception as exc:
            self.query_one("#export-status", Static).update(Text(f"cannot write: {exc}", style="bold red"))
            return
        self.app.notify(f"wrote the {fmt} report to {path}", title="Exported", timeout=6)
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
