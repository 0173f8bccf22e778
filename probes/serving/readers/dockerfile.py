"""Dockerfiles: the last stage's base image (an engine image names the engine and version), ENV/ARG,
ENTRYPOINT + CMD (exec or shell form) and a `pip install vllm==X` pin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.safeio import loads_json
from probes.serving.envsubst import interpolate
from probes.serving.readers.argv import PIP_VLLM, from_argv
from probes.serving.readers.common import interp_tokens, logical_lines, split_command
from probes.serving.server import ParsedConfig, problem


@dataclass
class DockerfileParts:
    """What a Dockerfile contributes to a container: base image, env, ENTRYPOINT/CMD, pinned version."""

    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    entry: tuple[int, list[str]] | None = None
    cmd: tuple[int, list[str]] | None = None
    version: str | None = None


def dockerfile_parts(text: str, env: dict[str, str], problems: list[dict[str, Any]]) -> DockerfileParts:
    """The last stage's FROM, ENV/ARG, ENTRYPOINT and CMD (variables interpolated as Docker does)."""
    out = DockerfileParts(env=dict(env))
    env = out.env
    for lineno, line in logical_lines(text):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        instr, _, rest = s.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "FROM":
            out.image = rest.split()[0] if rest else None
            out.entry = out.cmd = None
        elif instr in ("ENV", "ARG"):
            if "=" in rest:
                toks = split_command(rest, lineno, problems) or []
                for t in toks:
                    k, eq, v = t.partition("=")
                    if eq:
                        env.setdefault(k, interpolate(v, env)) if instr == "ARG" else env.__setitem__(
                            k, interpolate(v, env)
                        )
            elif rest:
                k, _, v = rest.partition(" ")
                env[k] = v.strip()
        elif instr == "RUN":
            m = PIP_VLLM.search(rest)
            if m:
                out.version = m.group(1)
        elif instr in ("CMD", "ENTRYPOINT"):
            if rest.startswith("["):
                try:
                    argv = loads_json(rest)
                    if not isinstance(argv, list):
                        raise ValueError
                    argv = [str(x) for x in argv]
                except ValueError:
                    problems.append(problem("unparseable", f"{instr} at line {lineno} is not a JSON array", lineno))
                    continue
            else:
                argv = split_command(rest, lineno, problems)
                if argv is None:
                    continue
            argv = interp_tokens(argv, env, problems, lineno)
            if instr == "CMD":
                out.cmd = (lineno, argv)
            else:
                out.entry = (lineno, argv)
    return out


def parse_dockerfile(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "dockerfile", text=text)
    parts = dockerfile_parts(text, env, pc.problems)
    argv = (parts.entry[1] if parts.entry else []) + (parts.cmd[1] if parts.cmd else [])
    line = (parts.entry or parts.cmd or (1, []))[0]
    srv = from_argv(argv, source="dockerfile", line=line, name=path.name, env=parts.env, image=parts.image, text="")
    if srv is not None:
        srv.version = srv.version or parts.version
        for a in srv.adapters:
            a.line = line
        for p in srv.problems:
            p["line"] = line
        pc.servers.append(srv)
    return pc
