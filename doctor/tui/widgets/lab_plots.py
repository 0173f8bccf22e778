"""Plots of a lab report (peft-doctor/lab/1): quality vs rank, memory vs rank, latency per variant.

Pure functions of (report, width, height) → an ANSI string (plotext), like doctor/tui/widgets/plots.py whose
figure helpers they share; the chosen variant is marked ★, the prompt-only baseline is a grey line.
"""

from __future__ import annotations

from typing import Any

from doctor.tui.widgets.plots import _LOCK, _figure, _finite, _line, _points, _render, _value_ticks


def _by_method(report: dict[str, Any], method: str) -> list[dict[str, Any]]:
    return sorted((v for v in report.get("variants", []) if v.get("method") == method), key=lambda v: v["rank"])


def _rank_ticks(ax, ranks: list[int]) -> None:
    if ranks:
        ax.ruler("x").ticks([float(r) for r in ranks], [str(r) for r in ranks])


def _title(fig: Any, width: int, *titles: str) -> None:
    """The longest title that fits: plotext drops a title wider than the plot (the plot then has none)."""
    fig.title(next((t for t in titles if len(t) <= width - 4), titles[-1]))


def _chosen(report: dict[str, Any]) -> dict[str, Any] | None:
    return next((v for v in report.get("variants", []) if v.get("name") == report.get("chosen")), None)


def quality_plot(report: dict[str, Any], width: int = 60, height: int = 12) -> str:
    """Overall accuracy (%) vs LoRA rank, QLoRA as ◆, prompt-only as a horizontal line, chosen as ★."""
    lora = [v for v in _by_method(report, "lora") if _finite(v.get("overall"))]
    qlora = [v for v in _by_method(report, "qlora") if _finite(v.get("overall"))]
    base = next((v for v in report.get("variants", []) if v.get("method") == "prompt_only"), None)
    if not lora and not qlora:
        return "no trained variant has eval results yet"
    with _LOCK:
        plt, fig = _figure(width, height)
        xs = [float(v["rank"]) for v in lora]
        ys = [v["overall"] * 100 for v in lora]
        _line(plt, fig, xs, ys, "cyan")
        _points(plt, fig, xs, ys, "●", "cyan")
        _points(plt, fig, [float(v["rank"]) for v in qlora], [v["overall"] * 100 for v in qlora], "◆", "magenta")
        vals = ys + [v["overall"] * 100 for v in qlora]
        if base is not None and _finite(base.get("overall")):
            fig.line(base["overall"] * 100, orientation="horizontal", pixel=plt.pixel(foreground="gray"))
            vals.append(base["overall"] * 100)
        c = _chosen(report)
        if c is not None and c.get("rank") is not None and _finite(c.get("overall")):
            _points(plt, fig, [float(c["rank"])], [c["overall"] * 100], "★", "green")
        _value_ticks(fig, vals)
        _rank_ticks(fig, sorted({v["rank"] for v in lora + qlora}))
        _title(fig, width, "overall % vs rank (◆ QLoRA, ─ prompt-only)", "overall % vs rank")
        return _render(plt, fig)


def memory_plot(report: dict[str, Any], width: int = 60, height: int = 12) -> str:
    """Peak memory (MiB, labelled with its kind) vs rank for LoRA and QLoRA."""
    lora = [v for v in _by_method(report, "lora") if _finite(v.get("peak_memory_bytes"))]
    qlora = [v for v in _by_method(report, "qlora") if _finite(v.get("peak_memory_bytes"))]
    if not lora and not qlora:
        return "no peak memory measured yet"
    kind = (lora or qlora)[0].get("memory_kind") or "?"
    with _LOCK:
        plt, fig = _figure(width, height)
        xs = [float(v["rank"]) for v in lora]
        ys = [v["peak_memory_bytes"] / 2**20 for v in lora]
        _line(plt, fig, xs, ys, "yellow")
        _points(plt, fig, xs, ys, "●", "yellow")
        qx = [float(v["rank"]) for v in qlora]
        qy = [v["peak_memory_bytes"] / 2**20 for v in qlora]
        _points(plt, fig, qx, qy, "◆", "magenta")
        c = _chosen(report)
        if c is not None and c.get("rank") is not None and _finite(c.get("peak_memory_bytes")):
            _points(plt, fig, [float(c["rank"])], [c["peak_memory_bytes"] / 2**20], "★", "green")
        _value_ticks(fig, ys + qy)
        _rank_ticks(fig, sorted({v["rank"] for v in lora + qlora}))
        _title(fig, width, f"peak MiB vs rank ({kind})", "peak MiB vs rank", "peak MiB")
        return _render(plt, fig)


FORMS = (("base", "gray"), ("unmerged", "cyan"), ("merged", "green"))


def latency_plot(report: dict[str, Any], width: int = 60, height: int = 12) -> str:
    """p50 latency per variant and served form (base / unmerged / merged), one bar group per variant."""
    rows = [v for v in report.get("variants", []) if v.get("serving")]
    if not rows:
        return "no latency measured yet"
    names = [("★" if v.get("name") == report.get("chosen") else "") + v["name"] for v in rows]
    with _LOCK:
        plt, fig = _figure(width, height)
        series = []
        for form, _color in FORMS:
            series.append([float((v["serving"].get(form) or {}).get("p50") or 0.0) for v in rows])
        fig.draw(
            fig.bar(
                list(range(1, len(rows) + 1)),
                series,
                marker=[plt.marker("█", pixel=plt.pixel(foreground=c)) for _, c in FORMS],
                width=0.8,
            )
        )
        fig.ruler("x").ticks([float(i) for i in range(1, len(rows) + 1)], [n[:10] for n in names])
        _value_ticks(fig, [x for s in series for x in s])
        _title(fig, width, "p50 ms: base, unmerged, merged", "p50 ms")
        return _render(plt, fig)
