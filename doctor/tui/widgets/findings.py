"""Overview widgets: the summary bar, the artifact tree, the findings table and the detail pane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static, Tree

from doctor.core.model import ARTIFACT_KINDS, Finding, Report, Severity
from doctor.tui.data import SEVERITY_STYLE, SORT_KEYS, Row, artifact_status, filter_rows, glyph, rel, sort_rows


def middle(text: str, width: int) -> str:
    """Shorten long paths in the middle, keeping the rollout name and the file name."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 2] + "…" + text[-(keep - keep // 2) :]


def titled(title: str, locator: str, width: int) -> str:
    """Title and locator in one cell: the locator always shows (it tells apart two findings of the same
    rule on one file), the title is shortened first."""
    if not locator:
        return title
    loc = middle(locator, max(6, width // 3))
    room = width - len(loc) - 3
    if len(title) <= room:
        return f"{title} ({loc})"
    return f"{title[: max(1, room - 1)]}… ({loc})"


def severity_text(sev: str, word: bool = True) -> Text:
    return Text(f"{glyph(sev)} {sev}" if word else glyph(sev), style=SEVERITY_STYLE.get(sev, ""))


class SummaryBar(Static):
    """Rollout name, counts by severity, scan state."""

    def show(self, target: str, report: Report | None, state: str = "", mode: str = "") -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" peft-doctor ", style="bold reverse")
        t.append("  ")
        if mode:  # a mode that is on (◉ watching) comes first: it must show even at 80 columns
            t.append(mode, style="bold magenta")
            t.append("  ")
        if report is not None:
            counts = report.counts()
            for sev in ("error", "warning", "info"):
                plural = "s" if counts[sev] != 1 and sev != "info" else ""
                t.append(f"{glyph(sev)} {counts[sev]} {sev}{plural}", style=SEVERITY_STYLE[sev])
                t.append("  ")
        t.append(target, style="bold")
        if report is not None:
            n = len(report.artifacts)
            t.append(f"  {n} artifact{'' if n == 1 else 's'}", style="dim")
        if state:
            t.append(f"  {state}", style="italic")
        self.update(t)


def _worst(sevs) -> Severity | None:
    return max(sevs, key=lambda s: s.rank if s else 0, default=None)


def _status_label(sev: Severity | None, text: str) -> Text:
    return Text.assemble((glyph(sev) + " ", SEVERITY_STYLE.get(sev.value, "") if sev else "green"), text)


class ArtifactTree(Tree[str]):
    """Artifacts grouped by rollout (when there are several), then by kind; each leaf is the artifact's
    path inside its rollout, with the glyph of its worst finding (✓ when clean). Groups with findings
    start expanded, clean ones folded."""

    class Picked(Message):
        def __init__(self, shown: str) -> None:
            self.shown = shown
            super().__init__()

    def fill(self, report: Report, base: Path | None) -> None:
        from doctor.tui.data import rollout_of, rollout_roots

        self.clear()
        self.root.set_label(base.name if base else "artifacts")
        status = artifact_status(report)
        roots = rollout_roots(report)
        by_root: dict[Path | None, list] = {}
        for a in report.artifacts:
            by_root.setdefault(rollout_of(a.path, roots) if len(roots) > 1 else None, []).append(a)
        for root in sorted(by_root, key=lambda r: str(r or "")):
            arts = by_root[root]
            parent = self.root
            if root is not None:
                worst = _worst(status.get(str(a.path.resolve())) for a in arts)
                name = rel(root, base) if base is not None and root != base.resolve() else root.name
                parent = self.root.add(_status_label(worst, f"{name}/"), data=rel(root, base), expand=bool(worst))
            self._add_kinds(parent, arts, status, root, base)
        self.root.expand()

    def _add_kinds(self, parent, arts: list, status: dict, root: Path | None, base: Path | None) -> None:
        by_kind: dict[str, list] = {}
        for a in arts:
            by_kind.setdefault(a.kind, []).append(a)
        order = [k for k in ARTIFACT_KINDS if k in by_kind] + sorted(k for k in by_kind if k not in ARTIFACT_KINDS)
        for kind in order:
            group = sorted(by_kind[kind], key=lambda a: str(a.path))
            worst = _worst(status.get(str(a.path.resolve())) for a in group)
            node = parent.add(
                _status_label(worst, f"{kind} ({len(group)})"), data="", expand=root is None or bool(worst)
            )
            for a in group:
                shown = rel(a.path, base)
                leaf = rel(a.path, root) if root is not None else shown
                node.add_leaf(_status_label(status.get(str(a.path.resolve())), leaf), data=shown)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if event.node.data:
            self.post_message(self.Picked(event.node.data))


class FindingsHeader(Static):
    """Column titles over the findings table; click one to sort by it (again: reverse)."""

    def show(self, widths: list[int], sort_key: str, reverse: bool) -> None:
        self._widths = widths
        arrow = "▲" if reverse else "▼"
        t = Text(no_wrap=True, overflow="crop")
        for (key, label), w in zip(self._columns(), widths):
            cell = f"{label} {arrow}" if key == sort_key else label
            t.append(cell[:w].ljust(w) + " ", style="bold")
        self.update(t)

    def _columns(self) -> tuple[tuple[str, str], ...]:
        table = self.parent.query(FindingsTable).first() if self.parent else None
        return table.columns() if table is not None else FindingsTable.COLUMNS

    def on_click(self, event) -> None:
        x = 0
        for (key, _), w in zip(self._columns(), getattr(self, "_widths", [])):
            if x <= event.x < x + w + 1:
                table = self.parent.query_one(FindingsTable) if self.parent else None
                if table is not None:
                    table.set_sort(key, not table.sort_reverse if key == table.sort_key else False)
                return
            x += w + 1


class FindingsTable(ScrollView, can_focus=True):
    """A virtual table: only the rows on screen are rendered, so 10,000 findings filter and sort at the
    speed of a Python sort. `shown_rows` holds the rows in display order, `cursor_row` the highlight."""

    COMPONENT_CLASSES = {"findings--cursor", "findings--odd"}
    DEFAULT_CSS = """
    FindingsTable { height: 1fr; }
    FindingsTable > .findings--cursor { background: $block-cursor-blurred-background; }
    FindingsTable:focus > .findings--cursor { background: $block-cursor-background; text-style: bold; }
    FindingsTable > .findings--odd { background: $surface-lighten-1 30%; }
    """
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="findings.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="findings.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="findings.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="findings.pagedown"),
        Binding("home", "jump(0)", "First", show=False, id="findings.home"),
        Binding("end", "jump(-1)", "Last", show=False, id="findings.end"),
    ]
    # Below WIDE_AT the severity is its glyph alone (✗ ! i ✓: never colour only) and the title gets the room.
    COLUMNS = (("severity", "sev"), ("rule", "rule"), ("artifact", "artifact"), ("title", "title"))
    WIDE_COLUMNS = (("severity", "severity"), *COLUMNS[1:3], ("locator", "where"), COLUMNS[3])
    WIDE_AT = 100  # from this table width the locator gets its own column; below, it ends the title

    class Chosen(Message):
        def __init__(self, row: Row | None) -> None:
            self.row = row
            super().__init__()

    cursor_row: reactive[int] = reactive(0, always_update=False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows_all: list[Row] = []
        self.shown_rows: list[Row] = []
        self.query_text = ""
        self.sort_key = "severity"
        self.sort_reverse = False
        self._artifact_w = 20
        self._locator_w = 5

    # ------------------------------------------------------------------ data

    @property
    def row_count(self) -> int:
        return len(self.shown_rows)

    def set_rows(self, rows: list[Row]) -> None:
        self.rows_all = rows
        self._artifact_w = max([8, *(len(r.artifact) for r in rows[:2000])])
        self._locator_w = max([5, *(len(r.locator) for r in rows[:2000])])
        self.refresh_rows()

    def set_query(self, query: str) -> None:
        self.query_text = query
        self.refresh_rows()

    def set_sort(self, key: str, reverse: bool = False) -> None:
        self.sort_key, self.sort_reverse = key, reverse
        self.refresh_rows()

    def cycle_sort(self) -> str:
        i = SORT_KEYS.index(self.sort_key)
        self.set_sort(SORT_KEYS[(i + 1) % len(SORT_KEYS)])
        return self.sort_key

    def refresh_rows(self) -> None:
        keep = self.current()
        self.shown_rows = sort_rows(filter_rows(self.rows_all, self.query_text), self.sort_key, self.sort_reverse)
        self.virtual_size = Size(self.size.width, len(self.shown_rows))
        idx = 0
        if keep is not None:
            idx = next((i for i, r in enumerate(self.shown_rows) if r.key == keep.key), 0)
        self.set_reactive(FindingsTable.cursor_row, idx)
        self._scroll_to_cursor()
        self._header()
        self.refresh()
        self.post_message(self.Chosen(self.current()))

    def current(self) -> Row | None:
        if not self.shown_rows or not (0 <= self.cursor_row < len(self.shown_rows)):
            return None
        return self.shown_rows[self.cursor_row]

    def move_cursor(self, row: int) -> None:
        if self.shown_rows:
            self.cursor_row = max(0, min(len(self.shown_rows) - 1, row))

    # ------------------------------------------------------------------ layout

    @property
    def wide(self) -> bool:
        return self.scrollable_content_region.width >= self.WIDE_AT

    def columns(self) -> tuple[tuple[str, str], ...]:
        return self.WIDE_COLUMNS if self.wide else self.COLUMNS

    def widths(self) -> list[int]:
        total = max(30, self.scrollable_content_region.width)
        if self.wide:
            art = min(self._artifact_w, 38, max(10, total // 3))
            loc = min(self._locator_w, 18)
            return [10, 7, art, loc, max(10, total - 10 - 7 - art - loc - 4)]
        art = min(self._artifact_w, max(10, total // 5))
        return [5, 7, art, max(10, total - 5 - 7 - art - 3)]

    def _header(self) -> None:
        parent = self.parent
        if parent is not None:
            for h in parent.query(FindingsHeader):
                h.show(self.widths(), self.sort_key, self.sort_reverse)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.shown_rows))
        self._header()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        i = self.scroll_offset.y + y
        if i >= len(self.shown_rows):
            return Strip.blank(width, self.rich_style)
        r = self.shown_rows[i]
        widths = self.widths()
        base = self.rich_style
        if i == self.cursor_row:
            base = base + self.get_component_rich_style("findings--cursor")
        elif i % 2:
            base = base + self.get_component_rich_style("findings--odd")
        sev_style = Style.parse(SEVERITY_STYLE.get(r.severity, ""))
        cells = [
            (
                f"{glyph(r.severity)} {r.severity}" if len(widths) == 5 else f" {glyph(r.severity)}",
                widths[0],
                sev_style,
            ),
            (r.rule, widths[1], Style(bold=True)),
            (middle(r.artifact, widths[2]), widths[2], Style()),
        ]
        if len(widths) == 5:
            cells.append((middle(r.locator, widths[3]), widths[3], Style(dim=True)))
            cells.append((r.title, widths[4], Style()))
        else:
            cells.append((titled(r.title, r.locator, widths[3]), widths[3], Style()))
        segs = []
        for text, w, st in cells:
            cell = text[:w].ljust(w) + " "
            segs.append(Segment(cell, base + st))
        return Strip(segs).crop_extend(0, width, base)

    # ------------------------------------------------------------------ cursor

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.Chosen(self.current()))

    def _scroll_to_cursor(self) -> None:
        h = max(1, self.scrollable_content_region.height)
        y = self.scroll_offset.y
        if self.cursor_row < y:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= y + h:
            self.scroll_to(y=self.cursor_row - h + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta * max(1, self.scrollable_content_region.height - 1))

    def action_jump(self, where: int) -> None:
        self.move_cursor(0 if where == 0 else len(self.shown_rows) - 1)

    def on_click(self, event) -> None:
        self.focus()
        self.move_cursor(self.scroll_offset.y + event.y)


def _short(value: Any) -> str:
    if isinstance(value, list):
        if len(value) > 8 or any(isinstance(v, (dict, list)) for v in value):
            return f"[{len(value)} items]"
        return ", ".join(_short(v) for v in value)
    if isinstance(value, dict):
        if len(value) > 6:
            return f"{{{len(value)} keys}}"
        return json.dumps(value, default=str)[:120]
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def detail_renderable(f: Finding, shown: str) -> Group:
    head = Text.assemble(
        (f"{glyph(f.severity.value)} {f.severity.value.upper()} ", SEVERITY_STYLE[f.severity.value]),
        (f.rule, "bold"),
        "  ",
        (f.title, "bold"),
    )
    where = Text(shown + (f"  @ {f.locator}" if f.locator else ""), style="dim")
    parts: list[Any] = [head, where, Text(""), Text(f.message)]
    if f.symptoms:
        parts.append(Text("symptoms: " + ", ".join(f.symptoms), style="italic dim"))
    if f.fix:
        parts += [Text(""), Text.from_markup(f"[b green]Fix:[/] {escape(f.fix)}")]
    if f.action is not None:
        over = ", ".join(f"{k}={v}" for k, v in f.action.overrides.items())
        parts.append(Text.from_markup(f"[b]Job:[/] {escape(f.action.kind)} {escape(over)}"))
    ev = {k: v for k, v in (f.evidence or {}).items() if k not in ("points", "marks")}
    if ev:
        parts.append(Text(""))
        parts.append(Text("Evidence", style="bold underline"))
        for k, v in ev.items():
            parts.append(Text.assemble((f"  {k}: ", "bold"), _short(v)))
    return Group(*parts)


class FindingDetail(Static):
    """Message, evidence and fix of the selected finding."""

    finding: Finding | None = None

    def show(self, f: Finding | None, shown: str = "", empty: str = "Select a finding to see its detail.") -> None:
        self.finding = f
        self.update(detail_renderable(f, shown) if f is not None else Text(empty, style="dim"))


__all__ = [
    "ArtifactTree",
    "FindingDetail",
    "FindingsHeader",
    "FindingsTable",
    "Severity",
    "SummaryBar",
    "severity_text",
]
