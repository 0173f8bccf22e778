"""Plots drawn with plotext into strings (ANSI colour codes), shown by `PlotView` in the app.

Pure functions of (data, width, height): no Textual here, so they are testable on their own. Every
function tolerates missing keys and returns a short explanation instead of raising when there is nothing
to draw. plotext draws on one global figure, so building is serialised with a lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

_LOCK = threading.Lock()
MAX_MARKS = 40


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _figure(width: int, height: int):
    import plotext as plt

    fig = plt.figure
    fig.clear()
    fig.theme("simple")
    fig.plot_size(max(20, width), max(6, height))
    return plt, fig


def _render(plt, fig) -> str:
    return str(fig.build())


def _line(plt, ax, xs: Sequence[float], ys: Sequence[float], color: str) -> None:
    if not xs:
        return
    sig = ax.signal(list(xs), list(ys), marker=plt.marker("braille", pixel=plt.pixel(foreground=color)))
    sig.lines(True)
    ax.draw(sig)


def _value_ticks(ax, vals: Sequence[float], log: bool = False) -> None:
    """Low, middle and high value on the y axis. plotext's own ticks land on the nearest text row, so with
    few rows their labels drift from the values beside them; three ticks stay within half a row."""
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    ticks = [lo, lo / 2 + hi / 2, hi] if hi > lo else [lo]
    # more digits only when the short labels would read the same (a tiny wiggle on a large value)
    for digits in range(2, 8):
        labels = [_tick_label(10**t if log else t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            break
    ax.ruler("y").ticks(ticks, labels)


def _tick_label(t: float, digits: int = 2) -> str:
    """1.9, 0.085, 8.0e9, 3.0e-5: short, and exact enough to read a spike's size."""
    if not math.isfinite(t):
        return str(t)
    if t == 0 or 1e-3 <= abs(t) < 1e3:
        return f"{t:.{digits + 1}g}"
    mantissa, exp = f"{t:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exp)}"


def _points(plt, ax, xs: Sequence[float], ys: Sequence[float], symbol: str, color: str) -> None:
    if not xs:
        return
    ax.draw(ax.signal(list(xs), list(ys), marker=plt.marker(symbol, pixel=plt.pixel(foreground=color))))


# ------------------------------------------------------------------------------------------ training

SERIES = (("loss", "loss", "cyan"), ("grad_norm", "grad norm", "magenta"), ("lr", "learning rate", "green"))


def training_series(points: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The curves present in a training finding's evidence["points"] (at least one finite value)."""
    steps = points.get("steps") or []
    out = []
    for key, title, color in SERIES:
        ys = points.get(key)
        if isinstance(ys, list) and len(ys) == len(steps) and any(_finite(v) for v in ys):
            out.append((key, title, color))
    return out


def classify_marks(points: dict[str, Any], marks: Sequence[Any]) -> tuple[list[int], list[int]]:
    """Split marked steps into (flagged steps with a finite loss, non-finite steps). Steps whose loss or
    grad norm is non-finite in the evidence count as non-finite."""
    steps = points.get("steps") or []
    index = {s: i for i, s in enumerate(steps)}
    flagged: list[int] = []
    bad: list[int] = []
    for m in list(marks)[:MAX_MARKS]:
        if not _finite(m):
            continue
        m = int(m)
        i = index.get(m)
        if i is None:
            flagged.append(m)
            continue
        vals = [points.get(k)[i] for k in ("loss", "grad_norm") if isinstance(points.get(k), list)]
        if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in vals):
            bad.append(m)
        else:
            flagged.append(m)
    return flagged, bad


def training_plot(
    points: dict[str, Any],
    marks: Sequence[Any] = (),
    width: int = 60,
    height: int = 16,
    series: Sequence[str] = (),
    log_grad: bool = False,
) -> str:
    """Loss / grad norm / learning-rate curves, one panel each, spikes as vertical lines and red dots,
    non-finite steps as red ✗ at the top of each panel. `log_grad`: the grad-norm panel on a log10 axis
    (an explosion of 1e4 next to norms of 1 otherwise flattens the rest), labelled in the norm's units."""
    steps = points.get("steps") or []
    present = [s for s in training_series(points) if not series or s[0] in series]
    if not steps or not present:
        return "no training curve in this finding's evidence"
    # each panel needs ~7 rows to be readable: in a small pane keep the first ones (loss, then grad norm)
    present = present[: max(1, height // 7)]
    flagged, bad = classify_marks(points, marks)
    with _LOCK:
        plt, fig = _figure(width, height)
        if len(present) > 1:
            fig.subplots(len(present), 1)
        for row, (key, title, color) in enumerate(present, 1):
            ax = fig.subplot(row, 1) if len(present) > 1 else fig
            ys = points[key]
            logged = log_grad and key == "grad_norm"
            if logged:  # log10 of the positive norms; 0 and negatives have no place on a log axis
                scale, suffix = 1.0, " (log scale)"
                ys = [math.log10(float(v)) if _finite(v) and float(v) > 0 else None for v in ys]
            else:
                scale, suffix = _scale([float(v) for v in ys if _finite(v)])
                ys = [float(v) * scale if _finite(v) else v for v in ys]
            xs = [float(s) for s, v in zip(steps, ys) if _finite(v)]
            vals = [float(v) for v in ys if _finite(v)]
            _line(plt, ax, xs, vals, color)
            _value_ticks(ax, vals, log=logged)
            top = max(vals) if vals else 1.0
            value_at = dict(zip(steps, ys))
            for m in flagged:
                ax.line(float(m), orientation="vertical", pixel=plt.pixel(foreground="red"))
            _points(
                plt,
                ax,
                [float(m) for m in flagged if _finite(value_at.get(m))],
                [float(value_at[m]) for m in flagged if _finite(value_at.get(m))],
                "●",
                "red",
            )
            _points(plt, ax, [float(m) for m in bad], [top] * len(bad), "✗", "red")
            ax.title(title + suffix)
        return _render(plt, fig)


def _scale(vals: list[float]) -> tuple[float, str]:
    """Tiny values (learning rates) are drawn in units of 10^k so the axis labels stay readable."""
    top = max((abs(v) for v in vals), default=0.0)
    if top == 0 or top >= 1e-2:
        return 1.0, ""
    k = math.floor(math.log10(top))
    return 10.0**-k, f" (×1e{k})"


def marks_caption(points: dict[str, Any], marks: Sequence[Any]) -> str:
    flagged, bad = classify_marks(points, marks)
    parts = []
    if flagged:
        parts.append("● flagged steps " + _steps_text(flagged))
    if bad:
        parts.append("✗ non-finite at " + _steps_text(bad))
    return "   ".join(parts)


def _steps_text(steps: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(s) for s in steps[:limit])
    return shown + (f" … (+{len(steps) - limit})" if len(steps) > limit else "")


def loss_curve(steps: Sequence[float], loss: Sequence[float | None], width: int = 60, height: int = 12) -> str:
    """A single live loss curve (jobs screen)."""
    pairs = [(float(s), float(v)) for s, v in zip(steps, loss) if _finite(s) and _finite(v)]
    if not pairs:
        return "no loss reported yet"
    with _LOCK:
        plt, fig = _figure(width, height)
        _line(plt, fig, [p[0] for p in pairs], [p[1] for p in pairs], "cyan")
        _value_ticks(fig, [p[1] for p in pairs])
        fig.title("loss")
        return _render(plt, fig)


# ------------------------------------------------------------------------------------------ eval slices


def slice_rows(slices: Any) -> list[dict[str, Any]]:
    """Rows with a slice name and a finite delta; intervals optional."""
    if not isinstance(slices, list):
        return []
    out = []
    for row in slices:
        if isinstance(row, dict) and _finite(row.get("delta")):
            out.append(row)
    return out


def _slice_labels(names: list[str], width: int = 14) -> list[str]:
    """Names cut to the axis width; where two cuts read the same (gsm8k · exact_match,strict-match and
    …,flexible-extract), keep both ends instead so each row stays tellable."""
    cut = [n[:width] for n in names]
    if len(set(cut)) == len(cut):
        return cut
    head = (width - 1) // 2
    return [n if len(n) <= width else n[:head] + "…" + n[-(width - 1 - head) :] for n in names]


def slices_plot(slices: Any, width: int = 60, height: int = 14) -> str:
    """Per-slice delta (candidate − baseline) as a dot with its confidence interval; zero drawn as a line.
    Slices whose interval lies wholly below zero are red, wholly above green, the rest yellow."""
    rows = slice_rows(slices)
    if not rows:
        return "no per-slice deltas in this finding's evidence"
    rows = rows[:40]
    with _LOCK:
        plt, fig = _figure(width, max(height, min(40, len(rows) + 6)))
        ys = list(range(1, len(rows) + 1))
        for y, row in zip(ys, rows):
            lo, hi, d = row.get("ci_low"), row.get("ci_high"), float(row["delta"]) * 100
            color = "yellow"
            if _finite(lo) and _finite(hi):
                color = "red" if hi < 0 else ("green" if lo > 0 else "yellow")
                seg = fig.segment(
                    (float(lo) * 100, float(hi) * 100),
                    (float(y), float(y)),
                    marker=plt.marker("─", pixel=plt.pixel(foreground=color)),
                )
                fig.draw(seg)
            _points(plt, fig, [d], [float(y)], "●", color)
        fig.line(0.0, orientation="vertical", pixel=plt.pixel(foreground="gray"))
        fig.ruler("y").ticks([float(y) for y in ys], _slice_labels([str(r.get("slice", "?")) for r in rows]))
        fig.ruler("y").lim(0.5, len(rows) + 0.5)
        # deltas are fractions of the metric's scale: in points, as the findings state them
        fig.title("Δ pts per slice (candidate − baseline), 95% interval")
        return _render(plt, fig)


# ------------------------------------------------------------------------------------------ adapters


def layer_table(evidence: dict[str, Any], facts: dict[str, Any] | None = None) -> dict[str, list[float]]:
    """Per-layer update norm and effective rank from a finding's evidence, else from adapter facts
    (`layers`: [{layer, update_norm, effective_rank, …}]). Returns {"layer": […], "update_norm": […],
    "effective_rank": […]} aggregated per layer index (sum of norms, mean rank)."""
    out: dict[str, list[float]] = {}
    ev = evidence or {}
    norms = ev.get("update_norm")
    layers = ev.get("layers")
    if isinstance(norms, list) and isinstance(layers, list) and len(norms) == len(layers):
        pairs = [(float(x), float(v)) for x, v in zip(layers, norms) if _finite(x) and _finite(v)]
        if pairs:
            out["layer"] = [p[0] for p in pairs]
            out["update_norm"] = [p[1] for p in pairs]
    ranks = ev.get("effective_rank")
    if isinstance(ranks, list) and ranks and all(_finite(v) for v in ranks):
        out["module_rank"] = [float(v) for v in ranks]
    rows = (facts or {}).get("layers") if isinstance(facts, dict) else None
    if isinstance(rows, list) and rows and "layer" not in out:
        agg: dict[int, list[tuple[float, float | None]]] = {}
        for r in rows:
            if not isinstance(r, dict) or not _finite(r.get("layer")) or not _finite(r.get("update_norm")):
                continue
            er = r.get("effective_rank")
            agg.setdefault(int(r["layer"]), []).append((float(r["update_norm"]), float(er) if _finite(er) else None))
        if agg:
            keys = sorted(agg)
            out["layer"] = [float(k) for k in keys]
            out["update_norm"] = [math.sqrt(sum(n * n for n, _ in agg[k])) for k in keys]
            ranks_per = [[r for _, r in agg[k] if r is not None] for k in keys]
            if all(ranks_per):
                out["effective_rank"] = [sum(rs) / len(rs) for rs in ranks_per]
    return out


def layers_plot(
    evidence: dict[str, Any], facts: dict[str, Any] | None = None, width: int = 60, height: int = 14
) -> str:
    """Adapter update norm per layer (and effective rank per layer, or per module, when known)."""
    t = layer_table(evidence, facts)
    panels: list[tuple[str, list[float], list[float], str]] = []
    if t.get("layer"):
        panels.append(("update norm ‖s·B·A‖ per layer", t["layer"], t["update_norm"], "cyan"))
        if t.get("effective_rank"):
            panels.append(("effective rank per layer (mean over modules)", t["layer"], t["effective_rank"], "yellow"))
    if t.get("module_rank"):
        panels.append(
            (
                "effective rank per module",
                [float(i) for i in range(1, len(t["module_rank"]) + 1)],
                t["module_rank"],
                "yellow",
            )
        )
    if not panels:
        return "no per-layer adapter numbers in this finding's evidence"
    with _LOCK:
        plt, fig = _figure(width, height)
        if len(panels) > 1:
            fig.subplots(len(panels), 1)
        for row, (title, xs, ys, color) in enumerate(panels, 1):
            ax = fig.subplot(row, 1) if len(panels) > 1 else fig
            ax.draw(ax.bar(xs, ys, marker=plt.marker("█", pixel=plt.pixel(foreground=color)), width=0.6))
            ax.title(title)
        return _render(plt, fig)


# ------------------------------------------------------------------------------------------ dispatch


def plot_kind(evidence: dict[str, Any], facts: dict[str, Any] | None = None) -> str | None:
    """Which plot a finding gets: "training", "slices", "layers", or None."""
    ev = evidence or {}
    pts = ev.get("points")
    if isinstance(pts, dict) and training_series(pts):
        return "training"
    if slice_rows(ev.get("slices")):
        return "slices"
    if layer_table(ev, facts):
        return "layers"
    return None


def plot_for(
    evidence: dict[str, Any], facts: dict[str, Any] | None, width: int, height: int, log_grad: bool = False
) -> str | None:
    kind = plot_kind(evidence, facts)
    ev = evidence or {}
    try:
        if kind == "training":
            return training_plot(ev["points"], ev.get("marks") or [], width, height, log_grad=log_grad)
        if kind == "slices":
            return slices_plot(ev["slices"], width, height)
        if kind == "layers":
            return layers_plot(ev, facts, width, height)
    except Exception as exc:  # a plot must never take the app down
        return f"(plot unavailable: {type(exc).__name__}: {exc})"
    return None


def caption_for(evidence: dict[str, Any]) -> str:
    ev = evidence or {}
    if plot_kind(ev) == "training":
        return marks_caption(ev["points"], ev.get("marks") or [])
    return ""
