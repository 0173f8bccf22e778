"""Follow growing training logs and report each new finding as it appears (headless; no Textual).

    w = LogWatcher(Path("train/trainer_log.jsonl"))
    new = w.poll()          # findings not reported before; reads only what was appended

jsonl logs, TensorBoard event files and MLflow metric files are read from the last offset (a partial
last line/record waits for the next poll); a re-written trainer_state.json (or CSV) is re-read when its
size or mtime changes. `run_watch` polls every `interval` seconds and prints findings as they come.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from doctor.core.model import Finding
from probes.training import analyze
from probes.training.readers import read_log
from probes.training.readers.records import records_to_series
from probes.training.rules import RULES
from probes.training.series import Series

# Rules reported once per log, whatever their locator becomes as the log grows (flag "watch_once").
ONCE_PER_LOG = frozenset(r.id for r in RULES if r.has("watch_once"))


class LogWatcher:
    def __init__(
        self,
        path: Path,
        recipe: dict[str, Any] | None = None,
        param=analyze.default_param,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.recipe = recipe or {}
        self.param = param
        self.overrides = overrides
        self.seen: set[tuple[str, str]] = set()
        self._offset = 0
        self._line = 1
        self._records: list = []
        self._collector = None
        self._mlflow: dict[Path, tuple[int, list[int], list[float], int]] = {}
        self._stamp: tuple[int, int] | None = None
        self.series: Series | None = None

    def _stat(self, p: Path) -> tuple[int, int] | None:
        try:
            st = p.stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def _read(self) -> Series | None:
        p, name = self.path, self.path.name.lower()
        if name.endswith(".jsonl"):
            from probes.training.readers.jsonl import read_lines

            st = self._stat(p)
            if st is None or st[0] == self._offset:
                return None
            if st[0] < self._offset:  # truncated / replaced: start over
                self._offset, self._line, self._records = 0, 1, []
            s = Series(format="jsonl")
            recs, self._offset, self._line = read_lines(p, self._offset, s, self._line)
            self._records.extend(recs)
            return records_to_series(
                self._records, Series(format="jsonl", problems=s.problems), where="entry ", overrides=self.overrides
            )
        if name.startswith("events.out.tfevents"):
            from probes.training.readers.tfevents import RecordReader, ScalarCollector

            st = self._stat(p)
            if st is None or st[0] == self._offset:
                return None
            if self._collector is None:
                self._collector = ScalarCollector()
            rr = RecordReader(p, self._offset, None, final=False)
            for payload in rr:
                self._collector.feed(payload)
            self._offset = rr.offset
            return self._collector.series(Series(format="tensorboard"), self.overrides)
        if p.is_dir() and p.parent.name != "wandb":
            return self._read_mlflow()
        st = self._stat(p) if p.is_file() else (0, time.time_ns() // 10**9)
        if st is None or st == self._stamp:
            return None
        self._stamp = st
        runs = read_log(p, self.overrides)
        return runs[0][1] if runs else None

    def _read_mlflow(self) -> Series | None:
        from probes.training.readers.mlflow import metric_files, parse_metric_lines, run_dirs, series_from_metrics

        changed = False
        runs = run_dirs(self.path)
        if not runs:
            return None
        run = runs[-1]
        s = Series(format="mlflow")
        for mname, f in metric_files(run).items():
            off, steps, vals, line = self._mlflow.get(f, (0, [], [], 1))
            st = self._stat(f)
            if st is None or st[0] == off:
                continue
            with f.open("rb") as fh:
                fh.seek(off)
                data = fh.read()
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                continue
            a, b = parse_metric_lines(data[:cut], mname, s, line)
            steps.extend(a)
            vals.extend(b)
            self._mlflow[f] = (off + cut, steps, vals, line + data[:cut].count(b"\n"))
            changed = True
        if not changed:
            return None
        metrics = {f.relative_to(run / "metrics").as_posix(): (v[1], v[2]) for f, v in self._mlflow.items()}
        return series_from_metrics(metrics, s, self.overrides)

    def poll(self) -> list[Finding]:
        """New findings since the last poll (each rule+locator is reported once)."""
        s = self._read()
        if s is None:
            return []
        self.series = s
        out = []
        for f in analyze.findings(self.path, s, self.recipe, self.param):
            key = (f.rule, "" if f.rule in ONCE_PER_LOG else f.locator)
            if key in self.seen:
                continue
            self.seen.add(key)
            out.append(f)
        return out


def own_logs(folder: Path) -> list[Path]:
    """The training logs under `folder` by this family's formats alone (callers that know every family's
    formats pass their own finder to run_watch, so a file another family claims is not taken for a log)."""
    from doctor.core.discovery import discover
    from probes.training.formats import CLASSIFIERS

    return [a.path for a in discover(folder, CLASSIFIERS) if a.kind == "training_log"]


def _targets(paths: Iterable[Path], logs_under: Callable[[Path], list[Path]]) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file() or p.name == "mlruns":
            out.append(p.resolve())
            continue
        out.extend(logs_under(p))
    return out


def format_finding(f: Finding) -> str:
    where = f.path.name if f.path else ""
    return f"{f.severity.glyph} {f.rule} {f.severity.value:<7} {where} {f.locator}: {f.message}"


def run_watch(
    paths: list[Path],
    settings=None,
    out: IO[str] = sys.stdout,
    interval: float = 0.25,
    stop: threading.Event | Callable[[], bool] | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    logs_under: Callable[[Path], list[Path]] = own_logs,
) -> int:
    """Follow the training logs under `paths` until `stop` is set (or KeyboardInterrupt); print each new
    finding as it appears. New log files under a watched folder are picked up (`logs_under(folder)` finds
    them). Returns the number of findings reported."""
    param = analyze.default_param
    overrides = None
    if settings is not None:

        def param(rule, name):
            return settings.thresholds.get(rule.id, {}).get(name, rule.params[name])

        cols = (
            settings.sections.get("training", {}).get("columns", {})
            if isinstance(settings.sections.get("training"), dict)
            else {}
        )
        overrides = {k: str(v) for k, v in cols.items()} or None
    watchers: dict[Path, LogWatcher] = {}
    count = 0
    stopped = (stop.is_set if hasattr(stop, "is_set") else stop) or (lambda: False)
    last_scan = 0.0
    try:
        while True:
            now = time.monotonic()
            if now - last_scan > 2.0:
                for t in _targets(paths, logs_under):
                    if t not in watchers:
                        watchers[t] = LogWatcher(t, param=param, overrides=overrides)
                        print(f"watching {t}", file=out, flush=True)
                if not watchers and not last_scan:  # say so once, rather than sit silent
                    where = ", ".join(str(p) for p in paths)
                    print(
                        f"no training logs under {where} yet; waiting for one to appear (Ctrl-C stops)",
                        file=out,
                        flush=True,
                    )
                last_scan = now
            for w in watchers.values():
                for f in w.poll():
                    count += 1
                    print(format_finding(f), file=out, flush=True)
                    if on_finding:
                        on_finding(f)
            if stopped():
                return count
            time.sleep(interval)
    except KeyboardInterrupt:
        return count
