"""Jobs as the app shows them (no Textual): collecting jobs across rollouts, formatting, event digests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_GLYPH = {
    "queued": ("…", "dim"),
    "running": ("▶", "bold cyan"),
    "succeeded": ("✓", "bold green"),
    "failed": ("✗", "bold red"),
    "cancelled": ("■", "yellow"),
}
VERDICT_STYLE = {"fixed": "bold green", "partly_fixed": "bold yellow", "not_fixed": "bold red", "worse": "bold red"}
LOG_TAIL = 200


def store_exists(root: Path) -> bool:
    return (root / ".doctor" / "jobs.sqlite").is_file()


def list_all(roots: list[Path]) -> list[tuple[Path, Any]]:
    """(rollout root, Job) for every job in every rollout that has a job store, newest first."""
    from doctor.jobs.store import JobStore

    out: list[tuple[Path, Any]] = []
    for root in roots:
        if store_exists(root):
            out.extend((root, j) for j in JobStore(root).list_jobs())
    out.sort(key=lambda rj: -(rj[1].created or 0.0))
    return out


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_text(step: int, max_steps: int, state: str, width: int = 10) -> str:
    if state == "succeeded":
        frac = 1.0
    elif max_steps <= 0:
        return "░" * width + "   —"
    else:
        frac = max(0.0, min(1.0, step / max_steps))
    full = round(frac * width)
    return "█" * full + "░" * (width - full) + f" {frac:4.0%}"


@dataclass
class EventDigest:
    """What the jobs screen keeps of a job's event stream: loss curve, log tail, last seq."""

    seq: int = 0
    steps: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    examples: tuple[int, int] | None = None  # a re-eval's (done, total), from its progress events

    def feed(self, events: list[dict[str, Any]]) -> list[str]:
        """Take new events; return the new log lines."""
        lines: list[str] = []
        for e in events:
            self.seq = max(self.seq, int(e.get("seq", self.seq)))
            kind = e.get("event")
            if (
                kind == "metrics"
                and isinstance(e.get("loss"), (int, float))
                and isinstance(e.get("step"), (int, float))
            ):
                self.steps.append(float(e["step"]))
                self.loss.append(float(e["loss"]))
                extra = ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in e.items()
                    if k not in ("event", "seq", "ts", "step", "max_steps")
                )
                lines.append(f"step {e['step']}: {extra}")
            elif kind in ("log", "error", "cancelled"):
                lines.append(f"{kind}: {e.get('message', '')}" if kind != "log" else str(e.get("message", "")))
            elif kind == "progress":
                done, total = e.get("done"), e.get("total")
                if isinstance(done, int) and isinstance(total, int) and total > 0:
                    self.examples = (done, total)
                continue
            elif kind in ("result", "done", "eval"):
                keys = ", ".join(
                    f"{k}={v}"
                    for k, v in e.items()
                    if k not in ("event", "seq", "ts") and not isinstance(v, (dict, list))
                )
                lines.append(f"{kind}: {keys}"[:300])
        self.log.extend(lines)
        del self.log[:-LOG_TAIL]
        return lines


def comparison_lines(comp: Any) -> list[tuple[str, str, str, str]]:
    """Rows (metric, before, after, change) from a before/after comparison, best effort over its shape."""
    if not isinstance(comp, dict):
        return []
    before, after = comp.get("before"), comp.get("after")
    rows: list[tuple[str, str, str, str]] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [k for k in before if k in after] + [k for k in after if k not in before]:
            b, a = before.get(key), after.get(key)
            if isinstance(b, (dict, list)) or isinstance(a, (dict, list)):
                continue
            rows.append((str(key), _v(b), _v(a), _delta(b, a)))
        return rows
    for key, val in comp.items():
        if isinstance(val, dict) and ("before" in val or "after" in val):
            b, a = val.get("before"), val.get("after")
            rows.append((str(key), _v(b), _v(a), _delta(b, a)))
    return rows


def _v(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _delta(b: Any, a: Any) -> str:
    if isinstance(b, (int, float)) and isinstance(a, (int, float)) and not isinstance(b, bool):
        return f"{a - b:+.4g}"
    return ""
