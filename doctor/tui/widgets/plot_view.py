"""A Static that draws a plotext plot sized to itself and redraws on resize."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import Static

PlotFn = Callable[[int, int], "str | None"]


class PlotView(Static):
    """Holds a drawing function of (width, height) → ANSI string; draws it at the widget's size."""

    DEFAULT_CSS = """
    PlotView { height: 1fr; min-height: 8; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("", *args, **kwargs)
        self._fn: PlotFn | None = None
        self._caption = ""
        self._empty = ""
        self._last: tuple[int, int] | None = None
        self.plain = ""  # what is drawn, without colours (tests, screen readers)

    def show_plot(self, fn: PlotFn | None, caption: str = "", empty: str = "") -> None:
        self._fn, self._caption, self._empty = fn, caption, empty
        self._last = None
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        w, h = self.content_region.width, self.content_region.height
        if self._fn is None:
            self.plain = self._empty
            self.update(Text(self._empty, style="dim"))
            return
        if w < 10 or h < 4:
            return
        if self._last == (w, h):
            return
        self._last = (w, h)
        rows = h - (1 if self._caption else 0)
        drawn = self._fn(w, rows)
        if drawn is None:
            self.plain = self._empty
            self.update(Text(self._empty, style="dim"))
            return
        text = Text.from_ansi(drawn, no_wrap=True) if "\x1b" in drawn or "\n" in drawn else Text(drawn, style="dim")
        if self._caption:  # first, so a tall plot never pushes it out of view
            text = Text.assemble((self._caption + "\n", "red"), text)
        self.plain = text.plain
        self.update(text)
