"""Watch mode's domain side (no Textual): follow growing training logs and report only findings that are
new since watching began.

The logs as they are when watching starts are the baseline: each log is read once and what it shows is
dropped (the scan already reported it). Logs the training probe folds into another run (TensorBoard
event files beside a trainer_state.json, superseded checkpoint states) are not followed, as
`doctor check` does not read them either. Uses probes.training.watch.LogWatcher (reads only what was
appended); without it, re-checks a log whenever its size or mtime changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from doctor.core.model import Finding, Report
from doctor.core.settings import Settings


def training_logs(report: Report) -> list[Path]:
    """Training logs the scan read itself: not those it treated as another log's run."""
    return sorted(
        {
            a.path
            for a in report.artifacts
            if a.kind == "training_log" and not ({"same_run_as", "superseded_by"} & set(a.facts))
        },
        key=str,
    )


def key(f: Finding) -> str:
    return f.fingerprint(str(f.path.resolve()) if f.path is not None else "")


def loose_key(f: Finding, roots: list[Path]) -> tuple[str, str, str]:
    """(rule, locator, rollout): the same problem re-found in another file of the same run."""
    from doctor.tui.data import rollout_of

    root = rollout_of(f.path, roots)
    return f.rule, f.locator, str(root) if root is not None else ""


def already_known(report: Report, roots: list[Path], findings: Iterable[Finding]) -> list[Finding]:
    """The findings the report does not have yet (by fingerprint, or by rule + locator in the rollout)."""
    exact = {key(f) for f in report.findings}
    loose = {loose_key(f, roots) for f in report.findings}
    out = []
    for f in findings:
        k, lk = key(f), loose_key(f, roots)
        if k in exact or lk in loose:
            continue
        exact.add(k)
        loose.add(lk)
        out.append(f)
    return out


def _stamp(path: Path) -> tuple[int, float]:
    try:
        if path.is_dir():
            st = [p.stat() for p in path.rglob("*") if p.is_file()]
            return sum(s.st_size for s in st), max((s.st_mtime for s in st), default=0.0)
        s = path.stat()
        return s.st_size, s.st_mtime
    except OSError:
        return -1, 0.0


def _watcher_options(settings: Settings | None):
    """Rule thresholds and column overrides from the settings, as `doctor watch` applies them."""
    from probes.training import analyze

    if settings is None:
        return analyze.default_param, None

    def param(rule, name):
        return settings.thresholds.get(rule.id, {}).get(name, rule.params[name])

    training = settings.sections.get("training")
    cols = training.get("columns", {}) if isinstance(training, dict) else {}
    return param, ({k: str(v) for k, v in cols.items()} or None)


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, size), or None when the file is gone: a new inode or a smaller size is a rewritten log."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size


def follow(
    logs: list[Path],
    settings: Settings,
    on_new: Callable[[list[Finding]], None],
    stop: threading.Event,
    interval: float = 1.0,
    on_rewritten: Callable[[Path, list[Finding]], None] | None = None,
) -> None:
    """Poll until `stop` is set; call `on_new` with findings that appear after the first poll. A log that
    is deleted, replaced or truncated (a restarted run) is read afresh and `on_rewritten(path, findings)`
    says what it shows now, so findings that watch added and the file no longer shows can go."""
    try:
        from probes.training.watch import LogWatcher
    except ImportError:
        LogWatcher = None
    if LogWatcher is None:
        _poll_checks(logs, settings, on_new, stop, interval)
        return
    param, overrides = _watcher_options(settings)
    watchers = [LogWatcher(p, param=param, overrides=overrides) for p in logs]
    seen = {p: _identity(p) for p in logs}
    for w in watchers:  # the baseline: what the log holds now was in the scan
        try:
            w.poll()
        except Exception:
            pass  # half-written: the next poll reads it
    while not stop.wait(interval):
        new: list[Finding] = []
        for i, w in enumerate(watchers):
            p = logs[i]
            now, before = _identity(p), seen[p]
            seen[p] = now
            if (
                on_rewritten is not None
                and before is not None
                and (now is None or now[0] != before[0] or now[1] < before[1])
            ):
                w = watchers[i] = LogWatcher(p, param=param, overrides=overrides)
                try:
                    current = w.poll() if now is not None else []
                except Exception:
                    current = []
                if not stop.is_set():
                    on_rewritten(p, list(current))
                continue
            try:
                new.extend(w.poll())
            except Exception:
                continue
        if new and not stop.is_set():
            on_new(new)


def _poll_checks(
    logs: list[Path],
    settings: Settings,
    on_new: Callable[[list[Finding]], None],
    stop: threading.Event,
    interval: float,
    known: set[str] | None = None,
) -> None:
    """Fallback without probes.training.watch: re-check a log whenever its size or mtime changes.
    `known` (default: what the logs show now) are the fingerprints not to report."""
    from doctor.engine import check

    stamps = {p: _stamp(p) for p in logs}
    if known is None:
        try:
            known = {key(f) for f in check(logs, settings, cancelled=stop).findings}
        except Exception:
            known = set()
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
