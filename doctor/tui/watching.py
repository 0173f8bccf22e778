"""Watch mode's domain side (no Textual): follow growing training logs and report findings not seen
before. Uses probes.training.watch (LogWatcher/run_watch: reads only what was appended); without it,
re-checks a log whenever its size or mtime changes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from doctor.config import Settings
from doctor.model import Finding, Report


def training_logs(report: Report) -> list[Path]:
    return sorted({a.path for a in report.artifacts if a.kind == "training_log"}, key=str)


def key(f: Finding) -> str:
    return f.fingerprint(str(f.path.resolve()) if f.path is not None else "")


def _stamp(path: Path) -> tuple[int, float]:
    try:
        if path.is_dir():
            st = [p.stat() for p in path.rglob("*") if p.is_file()]
            return sum(s.st_size for s in st), max((s.st_mtime for s in st), default=0.0)
        s = path.stat()
        return s.st_size, s.st_mtime
    except OSError:
        return -1, 0.0


def follow(
    logs: list[Path],
    settings: Settings,
    known: set[str],
    on_new: Callable[[list[Finding]], None],
    stop: threading.Event,
    interval: float = 1.0,
) -> None:
    """Poll until `stop` is set; call `on_new` with findings whose fingerprint is not in `known`."""
    try:
        from probes.training.watch import run_watch
    except ImportError:
        run_watch = None
    if run_watch is not None:

        def seen(f: Finding) -> None:
            k = key(f)
            if k not in known and not stop.is_set():
                known.add(k)
                on_new([f])

        with open(os.devnull, "w") as sink:
            run_watch(logs, settings, out=sink, interval=interval, stop=stop, on_finding=seen)
        return
    _poll_checks(logs, settings, known, on_new, stop, interval)


def _poll_checks(
    logs: list[Path],
    settings: Settings,
    known: set[str],
    on_new: Callable[[list[Finding]], None],
    stop: threading.Event,
    interval: float,
) -> None:
    """Fallback without probes.training.watch: re-check a log whenever its size or mtime changes."""
    from doctor.engine import check

    stamps = {p: _stamp(p) for p in logs}
    while not stop.wait(interval):
        changed = [p for p in logs if _stamp(p) != stamps[p]]
        if not changed:
            continue
        for p in changed:
            stamps[p] = _stamp(p)
        try:
            report = check(changed, settings, cancelled=stop)
        except Exception:
            continue  # a half-written file: try again on the next change
        new = [f for f in report.findings if key(f) not in known]
        if new and not stop.is_set():
            known.update(key(f) for f in new)
            on_new(new)
