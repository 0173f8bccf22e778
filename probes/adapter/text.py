"""How adapter findings list things: a few items and a count, a long target_modules cut short."""

from __future__ import annotations

from typing import Any


def listed(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def short_tm(tm: Any) -> str:
    """target_modules as written, the first 6 entries of a long list."""
    if isinstance(tm, list) and len(tm) > 6:
        return f"[{', '.join(repr(t) for t in tm[:6])}, … {len(tm)} entries]"
    return repr(tm)
