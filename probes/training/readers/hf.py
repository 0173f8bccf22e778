"""HF Trainer `trainer_state.json` (also axolotl's, which adds ppl / memory/* / tokens/* keys).

orjson parses a clean file; one with the bare NaN / Infinity tokens HF writes (which Python's json accepts
and orjson does not) or with damage goes through Python's json. A truncated or corrupt file is reported
(DOC001 with the position) and the complete log_history entries before the damage are still analysed.
"""

from __future__ import annotations

import json
import mmap
import re
from pathlib import Path
from typing import Any

import orjson

from doctor.core.safeio import loads_json
from probes.training.readers.records import records_to_series
from probes.training.series import Series

META_KEYS = (
    "global_step",
    "max_steps",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "num_train_epochs",
    "train_batch_size",
    "best_metric",
    "best_model_checkpoint",
    "best_global_step",
)
_CKPT = re.compile(r"^checkpoint-(\d+)$")
_GLOBAL_STEP = re.compile(rb'"global_step"\s*:\s*(\d+)')


def read_text(path: Path, s: Series) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        s.problem("doc", "", f"cannot read: {exc.strerror}")
        return None
    if not raw.strip():
        s.problem("doc", "byte 0", f"file is empty ({len(raw)} bytes); nothing to analyse")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        s.problem("doc", f"byte {exc.start}", "not UTF-8 text; undecodable bytes replaced")
        return raw.decode("utf-8", errors="replace")


def _salvage_history(text: str) -> list:
    """Complete log_history entries before a JSON error (streaming raw_decode from the list start)."""
    m = re.search(r'"log_history"\s*:\s*\[', text)
    if not m:
        return []
    dec = json.JSONDecoder()
    pos, out, n = m.end(), [], len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            break
        try:
            obj, pos = dec.raw_decode(text, pos)
        except ValueError:
            break
        out.append(obj)
    return out


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {col} (char {pos})"


def _fast_parse(path: Path) -> Any:
    """orjson over the raw bytes (several times json.load's speed on a million-entry log); None when it
    cannot: bare NaN / Infinity tokens (HF writes them; orjson is strict JSON), bad UTF-8, damage, deep
    nesting. The standard parser then reads it, reporting the position of any damage."""
    try:
        with path.open("rb") as fh:
            if fh.seek(0, 2) == 0:
                return None
            # mapped, not read: no 100+ MB copy into fresh process memory before parsing
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    return orjson.loads(view)
                finally:
                    view.release()
    except (OSError, ValueError, orjson.JSONDecodeError):
        return None


def read_trainer_state(path: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="hf_trainer_state")
    state = _fast_parse(path)
    if state is not None:
        return _from_state(state, s, overrides)
    text = read_text(path, s)
    if text is None:
        return s
    try:
        state = loads_json(text)
    except json.JSONDecodeError as exc:
        entries = _salvage_history(text)
        cut = "truncated" if exc.pos >= len(text.rstrip()) - 1 else "invalid JSON"
        s.problem(
            "doc",
            _line_col(text, exc.pos),
            f"{cut}: {exc.msg} at {_line_col(text, exc.pos)} of {len(text)} chars; "
            f"salvaged {len(entries)} complete log_history entries before it",
        )
        s.meta["salvaged_entries"] = len(entries)
        for k in META_KEYS:
            m = re.search(rf'"{k}"\s*:\s*([0-9.eE+-]+|null|"[^"]*")', text[:65536])
            if m:
                try:
                    s.meta[k] = json.loads(m.group(1))
                except ValueError:
                    pass
        return records_to_series(entries, s, where="/log_history/", overrides=overrides)
    return _from_state(state, s, overrides)


def _from_state(state: Any, s: Series, overrides: dict[str, str] | None) -> Series:
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        s.problem("doc", "/log_history", "no log_history list: not a Trainer state file")
        return s
    s.meta.update({k: state[k] for k in META_KEYS if k in state and state[k] is not None})
    hist = state["log_history"]
    keys = set()
    for r in hist[:50]:
        if isinstance(r, dict):
            keys.update(r)
    if "ppl" in keys or any(k.startswith(("memory/", "tokens/")) for k in keys):
        s.format = "axolotl_trainer_state"
    return records_to_series(hist, s, where="/log_history/", overrides=overrides)


def peek_global_step(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return -1
    m = _GLOBAL_STEP.search(head)
    return int(m.group(1)) if m else -1


def newest_state(path: Path) -> tuple[Path, list[Path]]:
    """The trainer_state.json that stands for this run (top-level or checkpoint-N/, highest global_step
    wins; the top-level file wins a tie) and every candidate considered."""
    ck = _CKPT.match(path.parent.name)
    run = path.parent.parent if ck else path.parent
    cands = []
    top = run / "trainer_state.json"
    if top.is_file():
        cands.append(top)
    try:
        for d in run.iterdir():
            if _CKPT.match(d.name) and (d / "trainer_state.json").is_file():
                cands.append(d / "trainer_state.json")
    except OSError:
        pass
    if path not in cands:
        cands.append(path)
    if len(cands) == 1:
        return path, cands

    def key(p: Path) -> tuple[int, int, int]:
        m = _CKPT.match(p.parent.name) if p != top else None
        return (peek_global_step(p), 0 if m else 1, int(m.group(1)) if m else 0)

    return max(cands, key=key), cands
