"""JSON-lines logs: LLaMA-Factory `trainer_log.jsonl` (current_steps, loss, lr, eval_loss; no grad_norm)
and generic JSONL with step/loss/grad_norm/lr keys. Garbage between lines is reported and skipped."""

from __future__ import annotations

from pathlib import Path

from doctor.core.safeio import loads_json
from probes.training.readers.records import records_to_series
from probes.training.series import Series

MAX_LINE = 8 * 1024 * 1024  # a longer line is reported and skipped, never held whole


def read_lines(path: Path, offset: int = 0, s: Series | None = None, first_line: int = 1):
    """Complete JSON lines from byte `offset`: (records, next_offset, next_line_number). A last line
    without its newline is left for the next read (a live log being written)."""
    records: list = []
    lineno = first_line
    with path.open("rb") as fh:
        fh.seek(offset)
        while True:
            start = fh.tell()
            line = fh.readline(MAX_LINE + 1)
            if not line:
                break
            if not line.endswith(b"\n"):
                if len(line) <= MAX_LINE:
                    fh.seek(start)  # partial last line: wait for the rest
                    break
                skipped = len(line)
                while True:  # huge line: skip to its end without keeping it
                    chunk = fh.readline(MAX_LINE)
                    skipped += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                if s is not None:
                    s.problem("entry", f"line {lineno}", f"line {lineno} is {skipped / 1e6:.1f} MB long; skipped")
                lineno += 1
                continue
            text = line.strip()
            if text:
                try:
                    obj = loads_json(text)
                except ValueError:
                    obj = None
                    if s is not None:
                        s.problem(
                            "entry",
                            f"line {lineno}",
                            f"line {lineno} is not JSON ({text[:40].decode('utf-8', 'replace')!r}…); skipped",
                        )
                if obj is not None:
                    if isinstance(obj, dict):
                        obj.setdefault("__line__", lineno)
                    records.append(obj)
            lineno += 1
        return records, fh.tell(), lineno


def read_jsonl(path: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="jsonl")
    if path.name == "trainer_log.jsonl":
        s.format = "llamafactory_trainer_log"
    try:
        size = path.stat().st_size
        records, end, _ = read_lines(path, 0, s)
    except OSError as exc:
        s.problem("doc", "", f"cannot read: {exc.strerror}")
        return s
    if size == 0:
        s.problem("doc", "byte 0", "file is empty (0 bytes); nothing to analyse")
        return s
    if end < size:
        s.problem("entry", f"byte {end}", f"last line is incomplete ({size - end} bytes without a newline); skipped")
    if not records:
        s.problem("doc", "line 1", "no JSON object lines found")
        return s
    last = records[-1]
    if isinstance(last, dict) and "total_steps" in last:
        s.meta["max_steps"] = last["total_steps"]
    return records_to_series(records, s, where="entry ", overrides=overrides)
