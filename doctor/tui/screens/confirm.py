"""Confirmation before a job starts: a one-line summary (what changes, from → to, estimated time) first,
then the exact spec that will run, scrollable with the keyboard; the buttons stay on screen at 80×24."""

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


def _n(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("—" if v is None else str(v))


def estimate_text(spec: dict[str, Any]) -> str:
    """About how long: the last finished job of the same kind on this rollout, else unknown (said so)."""
    try:
        from doctor.jobs.store import JobStore

        for j in JobStore(spec["rollout"]).list_jobs():
            if j.kind == spec.get("kind") and j.state == "succeeded" and j.started and j.ended:
                m = (j.ended - j.started) / 60
                return f"about {m:.0f} min (the last {j.kind} here took {m:.1f} min)"
    except Exception:
        pass
    steps = (spec.get("recipe") or {}).get("max_steps")
    return f"{steps} steps; time unknown (first {spec.get('kind')} on this rollout)" if steps else "time unknown"


def summary_line(spec: dict[str, Any]) -> str:
    """`retrain lora: learning_rate 0.02 → 0.0002, max_grad_norm 0 → 0.3 · about 9 min`."""
    changes = (spec.get("source") or {}).get("changes") or {}
    what = ", ".join(f"{k} {_n(a)} → {_n(b)}" for k, (a, b) in changes.items())
    if not what and spec.get("kind") == "reeval":
        what = f"evaluate {'base + adapter' if spec.get('adapter') else 'the base model'} ({spec.get('variant')})"
    kind = f"{spec.get('kind')} {spec.get('method') or ''}".strip()
    return f"{kind}: {what or 'the recorded recipe, unchanged'} · {estimate_text(spec)}"


class ConfirmJobScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "confirm", "Launch", tooltip="Launch this job", id="confirm.launch"),
        Binding("n,escape", "cancel", "Cancel", tooltip="Do not launch", id="confirm.cancel"),
        Binding("down,j", "scroll_spec(1)", "Scroll", show=False),
        Binding("up,k", "scroll_spec(-1)", "Scroll", show=False),
        Binding("pagedown,space", "scroll_spec(10)", "Page", show=False),
        Binding("pageup", "scroll_spec(-10)", "Page", show=False),
    ]

    def __init__(self, spec: dict[str, Any], text: str = "") -> None:
        super().__init__(id="confirm-job")
        self.spec = spec
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(
                Text.assemble(("Launch this job?  ", "bold"), (summary_line(self.spec), "bold magenta")),
                id="confirm-summary",
            )
            if self.text:
                yield Static(Text(self.text, style="dim"), id="confirm-title")
            with VerticalScroll(id="confirm-spec"):
                yield Static(Syntax(json.dumps(self.spec, indent=2, default=str), "json", word_wrap=True))
            with Horizontal(classes="buttons"):
                yield Button("Launch (y)", id="launch", variant="warning")
                yield Button("Cancel (n)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "launch")

    def action_scroll_spec(self, lines: int) -> None:
        box = self.query_one("#confirm-spec", VerticalScroll)
        box.scroll_to(y=box.scroll_y + lines, animate=False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
