"""The job store: an embedded SQLite file, `<rollout>/.doctor/jobs.sqlite` (jobs, states, events, outputs).

Survives restarts (WAL journal; every write is its own short transaction, so a monitor, a CLI and a TUI can
share it). Light module: no torch.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = ("succeeded", "failed", "cancelled")
DOCTOR_DIR = ".doctor"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  spec TEXT NOT NULL,
  launcher TEXT NOT NULL DEFAULT 'local',
  created REAL NOT NULL,
  started REAL,
  ended REAL,
  step INTEGER NOT NULL DEFAULT 0,
  max_steps INTEGER NOT NULL DEFAULT 0,
  phase TEXT,
  eta_s REAL,
  outputs TEXT NOT NULL DEFAULT '{}',
  error TEXT,
  comparison TEXT,
  worker_pid INTEGER,
  monitor_pid INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts REAL NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS states (
  job_id TEXT NOT NULL,
  ts REAL NOT NULL,
  state TEXT NOT NULL,
  reason TEXT
);
"""


def doctor_dir(rollout_root: Path | str) -> Path:
    return Path(rollout_root).resolve() / DOCTOR_DIR


def job_dir(rollout_root: Path | str, job_id: str) -> Path:
    return doctor_dir(rollout_root) / "jobs" / job_id


@dataclass
class Job:
    """One job record (what `doctor jobs show` and the TUI display)."""

    id: str
    kind: str
    state: str
    spec: dict[str, Any]
    launcher: str = "local"
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    step: int = 0
    max_steps: int = 0
    phase: str | None = None
    eta_s: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    comparison: dict[str, Any] | None = None
    worker_pid: int | None = None
    monitor_pid: int | None = None
    cancel_requested: bool = False

    @property
    def progress(self) -> tuple[int, int]:
        return self.step, self.max_steps

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def verdict(self) -> dict[str, Any] | None:
        """fixed | partly_fixed | not_fixed | worse with its numbers (doctor.jobs.verdict); None while running."""
        from doctor.jobs.verdict import job_verdict

        return job_verdict(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["progress"] = {"step": self.step, "max_steps": self.max_steps}
        v = self.verdict
        d["verdict"] = v["verdict"] if v else None
        d["verdict_detail"] = v
        return d


class JobStore:
    """Jobs of one rollout. `JobStore(rollout_root)`; the file is created on first use."""

    def __init__(self, rollout_root: Path | str) -> None:
        self.root = Path(rollout_root).resolve()
        self.dir = doctor_dir(self.root)
        self.path = self.dir / "jobs.sqlite"
        self._ready = False

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def _ensure(self) -> None:
        """Create .doctor/ and the tables on the first write (reading never writes into a rollout)."""
        if self._ready:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(_SCHEMA)
        self._ready = True

    def _conn(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        c.row_factory = sqlite3.Row
        c.execute("PRAGMA busy_timeout=30000")
        try:
            c.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        return _Closing(c)  # type: ignore[return-value]

    # -------------------------------------------------------------- jobs

    def create(self, spec: dict[str, Any], launcher: str = "local") -> Job:
        self._ensure()
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        now = time.time()
        with self._conn() as c:
            c.execute(
                "INSERT INTO jobs (id, kind, state, spec, launcher, created) VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, spec["kind"], json.dumps(spec), launcher, now),
            )
            c.execute("INSERT INTO states VALUES (?, ?, 'queued', NULL)", (job_id, now))
        job_dir(self.root, job_id).mkdir(parents=True, exist_ok=True)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        if not self.exists:
            raise KeyError(f"no job {job_id!r}: {self.path} does not exist")
        with self._conn() as c:
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                rows = c.execute("SELECT * FROM jobs WHERE id LIKE ?", (f"%{job_id}%",)).fetchall()
                if len(rows) != 1:
                    raise KeyError(
                        f"no job {job_id!r} in {self.path}" if not rows else f"job id {job_id!r} is ambiguous"
                    )
                row = rows[0]
        return _job(row)

    def list_jobs(self) -> list[Job]:
        if not self.exists:
            return []
        with self._conn() as c:
            rows = c.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
        return [_job(r) for r in rows]

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        self._ensure()
        enc = {
            k: (json.dumps(v) if k in ("outputs", "comparison", "spec") and v is not None else v)
            for k, v in fields.items()
        }
        cols = ", ".join(f"{k} = ?" for k in enc)
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*enc.values(), job_id))

    def set_state(self, job_id: str, state: str, reason: str | None = None, **fields: Any) -> None:
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        self._ensure()
        now = time.time()
        if state == "running":
            fields.setdefault("started", now)
        if state in TERMINAL:
            fields.setdefault("ended", now)
            if state != "succeeded" and reason:
                fields.setdefault("error", reason)
        enc = {k: (json.dumps(v) if k in ("outputs", "comparison") and v is not None else v) for k, v in fields.items()}
        cols = ", ".join(["state = ?", *(f"{k} = ?" for k in enc)])
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (state, *enc.values(), job_id))
            c.execute("INSERT INTO states VALUES (?, ?, ?, ?)", (job_id, now, state, reason))

    def states(self, job_id: str) -> list[dict[str, Any]]:
        if not self.exists:
            return []
        with self._conn() as c:
            rows = c.execute("SELECT ts, state, reason FROM states WHERE job_id = ? ORDER BY ts", (job_id,))
            return [dict(r) for r in rows.fetchall()]

    def add_output(self, job_id: str, key: str, value: Any) -> None:
        job = self.get(job_id)
        outputs = dict(job.outputs)
        outputs[key] = value
        self.update(job.id, outputs=outputs)

    def request_cancel(self, job_id: str) -> None:
        self.update(job_id, cancel_requested=1)

    # -------------------------------------------------------------- events

    def add_events(self, job_id: str, events: list[dict[str, Any]]) -> int:
        """Append events (JSON-ready dicts with an `event` type); returns the last sequence number."""
        if not events:
            return self.last_seq(job_id)
        self._ensure()
        now = time.time()
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)).fetchone()
            seq = row[0]
            for e in events:
                seq += 1
                c.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                    (job_id, seq, e.get("ts", now), str(e.get("event", "log")), json.dumps(e, default=str)),
                )
            c.execute("COMMIT")
        return seq

    def add_event(self, job_id: str, event: dict[str, Any]) -> int:
        return self.add_events(job_id, [event])

    def last_seq(self, job_id: str) -> int:
        if not self.exists:
            return 0
        with self._conn() as c:
            return c.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]

    def events(self, job_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Events after `after_seq` in time order (several writers batch theirs: sequence numbers are arrival
        order at the store, not time order); each dict has `seq`, `ts`, `event` and its fields."""
        if not self.exists:
            return []
        with self._conn() as c:
            rows = c.execute(
                "SELECT seq, ts, data FROM events WHERE job_id = ? AND seq > ? ORDER BY ts, seq", (job_id, after_seq)
            ).fetchall()
        out = []
        for r in rows:
            d = json.loads(r["data"])
            d["seq"], d["ts"] = r["seq"], r["ts"]
            out.append(d)
        return out


class _Closing:
    """A sqlite3 connection that closes when the `with` block ends (sqlite3's own only commits)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        self.conn.close()


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    return Job(
        id=d["id"],
        kind=d["kind"],
        state=d["state"],
        spec=json.loads(d["spec"]),
        launcher=d["launcher"],
        created=d["created"],
        started=d["started"],
        ended=d["ended"],
        step=d["step"] or 0,
        max_steps=d["max_steps"] or 0,
        phase=d["phase"],
        eta_s=d["eta_s"],
        outputs=json.loads(d["outputs"] or "{}"),
        error=d["error"],
        comparison=json.loads(d["comparison"]) if d["comparison"] else None,
        worker_pid=d["worker_pid"],
        monitor_pid=d["monitor_pid"],
        cancel_requested=bool(d["cancel_requested"]),
    )


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
