"""Pieces several readers share: logical lines, capped shell-word splitting, variable interpolation of
argv tokens and of parsed YAML trees, `env:` lists and `command:`/`args:` values.
"""

from __future__ import annotations

import shlex
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving.envsubst import interpolate
from probes.serving.server import problem


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 1
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


# shlex builds each token a character at a time (quadratic on one huge word): real command lines are short.
MAX_COMMAND = 64 * 1024


def split_command(line: str, lineno: int, problems: list[dict[str, Any]]) -> list[str] | None:
    if len(line) > MAX_COMMAND:
        problems.append(
            problem("unparseable", f"command at line {lineno} is {len(line)} characters long; not split", lineno)
        )
        return None
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        problems.append(
            problem("unparseable", f"cannot split command at line {lineno}: {exc} ({line.strip()[:80]!r})", lineno)
        )
        return None


def interp_tokens(
    tokens: list[str], env: dict[str, str], problems: list[dict[str, Any]], line: int, *, k8s: bool = False
) -> list[str]:
    out = []
    for t in tokens:
        unresolved: list[str] = []
        out.append(interpolate(t, env, unresolved, k8s=k8s))
        for name in unresolved:
            problems.append(
                problem("unresolved_var", f"${{{name}}} is not set in the file or the settings ([serving] env)", line)
            )
    return out


def interp_tree(obj: Any, env: dict[str, str], problems: list[dict[str, Any]], text: str) -> Any:
    if isinstance(obj, str):
        unresolved: list[str] = []
        v = interpolate(obj, env, unresolved)
        for name in unresolved:
            problems.append(
                problem(
                    "unresolved_var",
                    f"${{{name}}} is not set (no .env entry, no default)",
                    line_of(text, "${" + name, "$" + name),
                )
            )
        return v
    if isinstance(obj, list):
        return [interp_tree(x, env, problems, text) for x in obj]
    if isinstance(obj, dict):
        return {k: interp_tree(v, env, problems, text) for k, v in obj.items()}
    return obj


def env_of(
    value: Any, env: dict[str, str], problems: list[dict[str, Any]], text: str, *, k8s: bool = False
) -> dict[str, str]:
    out: dict[str, str] = {}
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        for e in value:
            if isinstance(e, str):
                k, _, v = e.partition("=")
                items.append((k, v))
            elif isinstance(e, dict) and "name" in e:
                if "value" in e:
                    items.append((str(e["name"]), e["value"]))
                else:
                    problems.append(
                        problem(
                            "unresolved_var",
                            f"env {e['name']} comes from {sorted(set(e) - {'name'})} (not readable statically)",
                            line_of(text, str(e["name"])),
                        )
                    )
    for k, v in items:
        if v is None:
            continue
        unresolved: list[str] = []
        scope = {**env, **out} if k8s else env
        out[str(k)] = interpolate(str(v), scope, unresolved, k8s=k8s)
        for name in unresolved:
            problems.append(problem("unresolved_var", f"${{{name}}} (in env {k}) is not set", line_of(text, name)))
    return out


def argv_of(value: Any, problems: list[dict[str, Any]], line: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(x) for x in value]
    toks = split_command(str(value), line, problems)
    return toks or []
