"""Reading untrusted input files safely: JSON too deeply nested, files that cannot be opened, size caps.

Every reader takes its input from a rollout someone else wrote: a 200,000-deep JSON array overflows the
stdlib parser's recursion guard (RecursionError, not ValueError), a FIFO named trainer_state.json blocks
an open() forever, and `read_text()[:N]` reads a 10 GB file whole before slicing. These helpers turn each
into the errors the readers already handle (JSONDecodeError with a position, ReadError → DOC001).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError


def _too_deep_at(text: str | bytes, limit: int) -> int:
    """The offset where bracket nesting first exceeds `limit` (strings skipped), else 0."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return i
        elif ch in "]}":
            depth -= 1
    return 0


def loads_json(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads`, with nesting too deep for the parser reported as a JSONDecodeError at its position."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        limit = 500
        pos = _too_deep_at(text, limit)
        doc = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        raise json.JSONDecodeError(f"nesting too deep to parse (more than {limit} levels)", doc, pos) from None


def read_json_file(path: Path) -> Any:
    """A whole UTF-8 JSON document; bad encoding or JSON is a ReadError (DOC001) with its position."""
    try:
        return loads_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
    except ValueError as exc:
        raise ReadError(path, f"invalid JSON: {exc}") from None


def read_capped(path: Path, limit: int) -> bytes:
    """At most `limit` bytes from the start of `path` (never the whole file when it is bigger)."""
    with path.open("rb") as fh:
        return fh.read(limit)


def read_text_capped(path: Path, limit: int, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The first `limit` bytes of `path` as text; a character cut in two at the cap is dropped."""
    data = read_capped(path, limit)
    try:
        return data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        if len(data) == limit and exc.start >= limit - 3:
            return data[: exc.start].decode(encoding, errors)
        raise


def unreadable_reason(path: Path) -> str | None:
    """Why `path` cannot be read as a regular file, or None. Never blocks (a FIFO is not opened)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return f"cannot open: {exc.strerror}"
    os.close(fd)
    return None


def require_readable(path: Path) -> None:
    """Raise ReadError (→ DOC001 naming the file and the reason) when `path` cannot be read."""
    reason = unreadable_reason(path)
    if reason is not None:
        raise ReadError(path, reason, "")
