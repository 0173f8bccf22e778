"""Line numbers for registry findings: where an entry's `name:` is written in registry.yaml."""

from __future__ import annotations

from typing import Any

from probes.common.yamlsafe import line_of


class NameLines:
    """An index of `name: <value>` lines, built once per registry text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), 1):
            key, sep, value = raw.strip().lstrip("- ").partition(":")
            if sep and key.strip() == "name":
                self.index.setdefault(value.strip().strip("'\""), n)

    def __call__(self, *needles: Any) -> int:
        """Line of the first needle that is an entry name, else of the first needle found in the text."""
        for n in needles:
            if isinstance(n, str) and n in self.index:
                return self.index[n]
        return line_of(self.text, *[n for n in needles if isinstance(n, str)])
