"""Per-scan state: what one scan's probes read once and share, dropped when the scan ends.

The engine makes one `ScanSession` per `scan()` and hands it to every probe through its context. It
replaces module-level caches: two scans in one process (a TUI rescan while the last one still runs, a
test after another) never see each other's tables, registries or facts, and nothing outlives the scan
unless the engine publishes it on the Report (`Report.derived`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from doctor.core.model import Finding

T = TypeVar("T")


def stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None when it cannot be stat'ed: a memo key that notices a rewrite."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class ScanSession:
    def __init__(self, cancelled: Any = None) -> None:
        # Set by a caller that wants to stop a long scan (the TUI's worker): an object with is_set().
        self.cancelled = cancelled
        self._memo: dict[tuple[str, Any], Any] = {}
        self._lock = threading.Lock()
        self._deferred: list[Finding] = []
        # What the scan publishes for renderers (the eval comparison tables, …), copied onto the Report.
        self.derived: dict[str, Any] = {}

    def is_cancelled(self) -> bool:
        return self.cancelled is not None and self.cancelled.is_set()

    def memo(self, space: str, key: Any, build: Callable[[], T]) -> T:
        """The value built for (space, key) in this scan, built on first use."""
        k = (space, key)
        with self._lock:
            if k in self._memo:
                return self._memo[k]
        value = build()
        with self._lock:
            return self._memo.setdefault(k, value)

    def defer(self, finding: Finding) -> None:
        """A finding of a DOC rule met while a family read its input (a skipped line, a path not followed):
        the engine drains it after the probe call, so it lands with that artifact's findings."""
        with self._lock:
            self._deferred.append(finding)

    def drain(self) -> list[Finding]:
        with self._lock:
            out, self._deferred = self._deferred, []
        return out
