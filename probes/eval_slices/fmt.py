"""How eval numbers read in findings: points, percentages, and a metric's own units."""

from __future__ import annotations

from typing import Any


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} pts"


def pc(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def unit(x: float | None, scale: float) -> str:
    """A score in the judge's own units (4.20/5) or as a percentage."""
    return pc(x) if scale == 1.0 or x is None else f"{x * scale:.2f}/{scale:g}"


def dunit(x: float | None, scale: float) -> str:
    return pts(x) if scale == 1.0 or x is None else f"{x * scale:+.2f}"


def val(e: dict[str, Any], x: float | None) -> str:
    """An aggregate value in the metric's own units: 0..1 as %, BLEU/ROUGE as points, loss as is."""
    if x is None:
        return "n/a"
    scale = e.get("scale", 1.0)
    if scale is None:
        return f"{x:.4g}"
    return f"{x * 100:.2f}" if scale == 100 else f"{x * 100:.1f}%"


def dval(e: dict[str, Any], x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.4g}" if e.get("scale", 1.0) is None else f"{x * 100:+.2f} pts"
