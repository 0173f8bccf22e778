"""File names that are not valid UTF-8, carried by each output format in its own convention.

Python hands such names over with the undecodable bytes as lone surrogates (U+DC80…U+DCFF, PEP 383);
no UTF-8 writer accepts them. JSON formats escape them (`\\udcff`: `json.loads` gives back the very
string, `os.fsencode` the original bytes), URIs percent-encode the raw bytes (`%FF`), and text formats
(console, Markdown, JUnit, GitHub annotations, the TUI) show the byte readably as `\\xff`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

_SURROGATE = re.compile("[\ud800-\udfff]")
JSON_FORMATS = frozenset({"json", "sarif", "gitlab"})


def _readable(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def readable(text: str) -> str:
    """`text` with every lone surrogate written as `\\xNN` (the byte) or `\\uNNNN`: valid UTF-8."""
    return _SURROGATE.sub(_readable, text) if _SURROGATE.search(text) else text


def json_escaped(text: str) -> str:
    """Rendered JSON with every raw lone surrogate replaced by its `\\uNNNN` escape.

    Surrogates only ever occur inside JSON strings, where the escape means the same character."""
    if not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def uri_path(path: str) -> str:
    """A relative path as a URI reference: the file system's bytes, percent-encoded (RFC 3986)."""
    return quote(os.fsencode(path), safe="/")


def file_uri(path: str) -> str:
    """An absolute path as a `file:` URI, percent-encoding the raw bytes (Path.as_uri refuses surrogates)."""
    return "file://" + uri_path(path if path.startswith("/") else "/" + path)


def for_format(fmt: str, text: str) -> str:
    return json_escaped(text) if fmt in JSON_FORMATS else readable(text)
