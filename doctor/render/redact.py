"""Secret redaction for everything doctor prints or writes (reports, `doctor inspect`, TUI export).

A serving config's `--api-key ${API_KEY}` resolved through its `.env`, a container's `HF_TOKEN`, a
password in a launch file: the probes keep such values in facts and evidence because they parse what the
file says, but a report is a CI artifact that anyone with read access may open. Redaction is by name
(values of `--api-key`/`--*-token` flags and of `*_TOKEN`, `*_KEY`, `*SECRET*`, `*PASSWORD*` variables)
and by shape (Hugging Face `hf_…` and OpenAI `sk-…` tokens); every value redacted by name is then also
blanked wherever else it occurs (a message quoting the command line, another fact).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from doctor.core.model import Report

REDACTED = "[redacted]"
# Values shorter than this are not hunted elsewhere in the report (a "1" would blank every number).
_MIN_ECHO = 6

_SECRET_WORD = re.compile(r"secret|passw(or)?d", re.IGNORECASE)
_ENV_SUFFIX = re.compile(r"[A-Z0-9_]*_(?:TOKEN|KEY)|[A-Z0-9_]*APIKEY")
# Lower-case names (flags, YAML keys) that hold credentials; `eos_token` and friends do not.
_SECRET_NAMES = frozenset(
    {
        "api-key",
        "apikey",
        "token",
        "hf-token",
        "hub-token",
        "access-token",
        "auth-token",
        "bearer-token",
        "private-key",
        "access-key",
        "secret-key",
        "api-token",
        "hf-api-token",
        "openai-api-key",
        "authorization",
    }
)
_SHAPES = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b|\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}")
_FLAG_VALUE = re.compile(
    r"(?<![\w-])(?P<flag>--?[A-Za-z][\w-]*)(?P<sep>=|[ \t]+)(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"']+)"
)
_ASSIGNMENT = re.compile(
    r"\b(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>=|:[ \t]*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"',]+)"
)


def secret_name(name: str) -> bool:
    """Whether a flag, variable or key of this name holds a credential."""
    bare = name.strip().lstrip("-")
    if not bare:
        return False
    if _SECRET_WORD.search(bare) or _ENV_SUFFIX.fullmatch(bare):
        return True
    return bare.lower().replace("_", "-") in _SECRET_NAMES


class Redactor:
    def __init__(self) -> None:
        self.values: set[str] = set()

    def _keep(self, value: str) -> str:
        bare = value.strip().strip("\"'")
        if bare and bare != REDACTED and not bare.startswith("$"):
            self.values.add(bare)
        return REDACTED

    def text(self, text: str) -> str:
        if not text:
            return text

        def flag(m: re.Match[str]) -> str:
            if not secret_name(m["flag"]) or m["value"].startswith("-"):
                return m.group()
            return f"{m['flag']}{m['sep']}{self._keep(m['value'])}"

        def assignment(m: re.Match[str]) -> str:
            if not secret_name(m["name"]) or (m["sep"] != "=" and m["name"].lower() == "token"):
                return m.group()
            return f"{m['name']}{m['sep']}{self._keep(m['value'])}"

        out = _FLAG_VALUE.sub(flag, text)
        out = _ASSIGNMENT.sub(assignment, out)
        return _SHAPES.sub(lambda m: self._keep(m.group()), out)

    def value(self, obj: Any, secret: bool = False) -> Any:
        """Pass 1: a copy of `obj` with secrets blanked by name and shape (the values are remembered)."""
        if isinstance(obj, str):
            return self._keep(obj) if secret and obj else self.text(obj)
        if secret and isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return self._keep(str(obj))
        if isinstance(obj, dict):
            out = {}
            named = obj.get("name") if isinstance(obj.get("name"), str) else None
            for k, v in obj.items():
                hide = secret or (isinstance(k, str) and secret_name(k))
                if named is not None and k in ("value", "default") and secret_name(named):
                    hide = True
                out[k] = self.value(v, hide)
            return out
        if isinstance(obj, (list, tuple)):
            items = []
            hide_next = False
            for item in obj:
                items.append(self.value(item, secret or hide_next))
                hide_next = isinstance(item, str) and item.startswith("-") and "=" not in item and secret_name(item)
            return tuple(items) if isinstance(obj, tuple) else items
        return obj

    def echo(self, obj: Any) -> Any:
        """Pass 2: every remembered value blanked wherever else it occurs."""
        if not self.values:
            return obj
        if isinstance(obj, str):
            for v in sorted((v for v in self.values if len(v) >= _MIN_ECHO), key=len, reverse=True):
                if v in obj:
                    obj = obj.replace(v, REDACTED)
            return obj
        if isinstance(obj, dict):
            return {k: self.echo(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.echo(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.echo(v) for v in obj)
        return obj


def redact_report(report: Report) -> Report:
    """A copy of `report` whose findings and facts carry no secret values (the input is not changed)."""
    r = Redactor()

    def fields(f: Any) -> dict[str, Any]:
        return {"message": f.message, "title": f.title, "locator": f.locator, "fix": f.fix, "evidence": f.evidence}

    findings = [r.value(fields(f)) for f in report.findings]
    facts = [r.value(a.facts) for a in report.artifacts]
    new_findings = [replace(f, **r.echo(d)) for f, d in zip(report.findings, findings)]
    new_artifacts = [replace(a, facts=r.echo(d)) for a, d in zip(report.artifacts, facts)]
    return replace(report, findings=new_findings, artifacts=new_artifacts)
