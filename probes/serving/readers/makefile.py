"""Makefiles. Makefile: variables (`NAME = v`, `:=`, `?=`, `export NAME=v`, command-line style `$(NAME)` / `${NAME}`)
are expanded the way make does before the shell sees a recipe line; `$$` becomes `$`. Recipe lines
(tab-indented, `@`/`-`/`+` prefixes dropped, backslash continuations joined) go through the same
command scanner as a shell script; each server is named after its target (`Makefile:serve`).
"""

from __future__ import annotations

import re
from pathlib import Path

from probes.serving.readers.shell import scan_commands
from probes.serving.server import ParsedConfig

_MAKE_VAR = re.compile(r"^(?:export\s+|override\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(\?=|:=|::=|\+=|=)\s*(.*)$")
_MAKE_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_TARGET = re.compile(r"^([A-Za-z0-9_./%$()-][^:=#]*?)\s*::?(?!=)(.*)$")
MAKEFILE_NAMES = ("makefile", "gnumakefile")


def is_makefile(name: str) -> bool:
    low = name.lower()
    return low in MAKEFILE_NAMES or low.endswith(".mk") or low.startswith("makefile.")


def _make_expand(value: str, variables: dict[str, str], depth: int = 0) -> str:
    """Expand $(VAR)/${VAR} recursively; unknown variables become ${VAR} for the shell step to report."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "\0"  # a literal $ for the shell; restored after expansion
        name = m.group(1) or m.group(2)
        if name in variables and depth < 8:
            return _make_expand(variables[name], variables, depth + 1)
        return "${" + name + "}"

    return _MAKE_REF.sub(sub, value)


def parse_makefile(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "makefile", text=text)
    variables: dict[str, str] = dict(env)
    recipe: list[tuple[int, str]] = []
    names: dict[int, str] = {}
    target = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        raw = lines[i]
        while raw.endswith("\\") and i + 1 < len(lines):
            i += 1
            raw = raw[:-1] + " " + lines[i].lstrip("\t ")
        i += 1
        if raw.startswith("\t"):
            if not target:
                continue
            body = raw.lstrip("\t").lstrip("@-+ ")
            line = _make_expand(body, variables).replace("\0", "$")
            recipe.append((start, line))
            names[start] = f"{path.name}:{target}"
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        vm = _MAKE_VAR.match(s)
        if vm:
            name, op, value = vm.groups()
            value = value.split(" #", 1)[0].strip()
            if op == "?=" and name in variables:
                continue
            if op in (":=", "::="):
                value = _make_expand(value, variables).replace("\0", "$")
            if op == "+=":
                value = (variables.get(name, "") + " " + value).strip()
            variables[name] = value
            continue
        tm = _TARGET.match(s)
        if tm:
            target = tm.group(1).strip().split()[0]
            inline = tm.group(2).partition(";")
            if inline[1] and inline[2].strip():  # `target: deps ; recipe`
                recipe.append((start, _make_expand(inline[2].strip(), variables).replace("\0", "$")))
                names[start] = f"{path.name}:{target}"
    shell_env = {k: v for k, v in variables.items() if "$" not in v}
    scan_commands(pc, path, recipe, shell_env, source="makefile", names=names)
    return pc
