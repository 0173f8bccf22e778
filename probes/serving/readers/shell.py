"""Shell scripts (and the command scanner Makefile recipes and Python `os.system` strings go through):
assignments feed the environment, launch lines become servers; `pip install vllm==X` pins the version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from probes.serving.envsubst import interpolate
from probes.serving.readers.argv import PIP_VLLM, from_argv
from probes.serving.readers.common import interp_tokens, logical_lines, split_command
from probes.serving.server import ParsedConfig

_ASSIGN = re.compile(r"^(?:export\s+|readonly\s+|declare\s+(?:-\w+\s+)?)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
LAUNCH = re.compile(
    r"vllm\s+serve|vllm\.entrypoints|sglang\.launch_server|text-generation-launcher|lorax-launcher|"
    r"docker\s+run|podman\s+run"
)
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})


def _cut(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for t in tokens:
        if t in _SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(t.rstrip(";"))
    return [p for p in parts if p]


def parse_shell(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "shell", text=text)
    scan_commands(pc, path, logical_lines(text), dict(env), source="shell")
    return pc


def scan_commands(
    pc: ParsedConfig,
    path: Path,
    lines: list[tuple[int, str]],
    env: dict[str, str],
    *,
    source: str,
    names: dict[int, str] | None = None,
) -> None:
    """Shell-like command lines (a script, Makefile recipe lines) → servers; assignments feed `env`."""
    version = None
    for lineno, line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = PIP_VLLM.search(stripped)
        if m:
            version = m.group(1)
        am = _ASSIGN.match(stripped)
        if am and " " not in am.group(2).strip().strip("'\""):
            toks = split_command(am.group(2), lineno, pc.problems) if am.group(2) else [""]
            if toks is not None:
                val = interpolate(toks[0] if toks else "", env)
                env[am.group(1)] = val
            continue
        if not LAUNCH.search(stripped):
            continue
        tokens = split_command(stripped, lineno, pc.problems)
        if tokens is None:
            continue
        name = (names or {}).get(lineno) or f"{path.name}:{lineno}"
        for part in _cut(tokens):
            problems: list[dict[str, Any]] = []
            part = interp_tokens(part, env, problems, lineno)
            srv = from_argv(part, source=source, line=lineno, name=name, env=env, text="")
            if srv is None:
                continue
            for a in srv.adapters:
                a.line = lineno
            srv.problems[:0] = problems
            for p in srv.problems:
                p["line"] = lineno
            srv.version = srv.version or version
            pc.servers.append(srv)
