"""Python launchers: the file is parsed with `ast` (never run). A launcher is a list literal that names an engine
entry point (`["python", "-m", "sglang.launch_server", "--lora-paths", …]`, `["vllm", "serve", …]`),
extended in place by `cmd += [...]`, `cmd.extend([...])`, `cmd.append(x)`; or an SGLang
`ServerArgs(model_path=…, lora_paths=[…])` call; or a command string handed to os.system / subprocess
(a docstring that only mentions `vllm serve` is no launch). Names bound
to string constants (also `os.environ.get("X", "default")`) are substituted; anything else stays an
unresolved `${name}` and is reported as such.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path
from typing import Any

from probes.serving.readers.argv import from_argv, sglang_server
from probes.serving.readers.common import interp_tokens
from probes.serving.readers.shell import LAUNCH, scan_commands
from probes.serving.server import ParsedConfig, Server, problem

_ENTRY_TOKENS = (
    "sglang.launch_server",
    "vllm.entrypoints.openai.api_server",
    "vllm.entrypoints.api_server",
    "text-generation-launcher",
    "lorax-launcher",
)


def _unknown(node: ast.AST) -> str:
    """A value doctor cannot know statically, as a ${NAME} the interpolation step reports as unresolved."""
    return "${" + (re.sub(r"\W+", "_", ast.unparse(node)).strip("_") or "expr") + "}"


_RUNNERS = frozenset({"system", "run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"})


class _Resolver:
    def __init__(self, tree: ast.Module) -> None:
        self.consts: dict[str, str] = {}
        for node in sorted(
            (n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)), key=lambda n: n.lineno
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is None:
                continue
            value = self.value(node.value)
            for t in targets:
                if isinstance(t, ast.Name) and value is not None and "${" not in value:
                    self.consts[t.id] = value

    def value(self, node: ast.AST) -> str | None:
        """A string for a constant-ish expression; None when it is not one."""
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str | int | float)
            and not isinstance(node.value, bool)
        ):
            return str(node.value)
        if isinstance(node, ast.Name):
            return self.consts.get(node.id)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                elif isinstance(v, ast.FormattedValue):
                    inner = self.value(v.value)
                    parts.append(inner if inner is not None else _unknown(v.value))
            return "".join(parts)
        if isinstance(node, ast.Call):
            fn = ast.unparse(node.func)
            if fn in ("str", "os.fspath") and node.args:
                return self.value(node.args[0])
            if fn in ("os.environ.get", "os.getenv") and len(node.args) >= 2:
                return self.value(node.args[1])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.value(node.left), self.value(node.right)
            return a + b if a is not None and b is not None else None
        return None

    def token(self, node: ast.AST) -> str:
        v = self.value(node)
        return v if v is not None else _unknown(node)

    def items(self, node: ast.AST) -> list[str] | None:
        """Tokens of a list/tuple literal (or a sum of them); None when it is not one."""
        if isinstance(node, ast.List | ast.Tuple):
            out: list[str] = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    inner = self.items(e.value)
                    out.extend(inner if inner is not None else [_unknown(e.value)])
                else:
                    out.append(self.token(e))
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.items(node.left), self.items(node.right)
            if a is not None and b is not None:
                return a + b
        return None


def _is_launcher(tokens: list[str]) -> bool:
    return any(t in _ENTRY_TOKENS for t in tokens) or any(
        t.rsplit("/", 1)[-1] == "vllm" and nxt == "serve" for t, nxt in itertools.pairwise(tokens)
    )


def parse_python(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "python", text=text)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        pc.problems.append(problem("unparseable", f"Python syntax error: {exc.msg}", exc.lineno or 1))
        return pc
    res = _Resolver(tree)
    lists: dict[str, tuple[int, list[str]]] = {}
    order: list[str] = []
    shell_lines: list[tuple[int, str]] = []
    kwargs_calls: list[tuple[int, dict[str, Any]]] = []
    nodes = sorted((n for n in ast.walk(tree) if hasattr(n, "lineno")), key=lambda n: (n.lineno, n.col_offset))
    for node in nodes:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            items = res.items(node.value)
            if items is not None:
                name = node.targets[0].id
                lists[name] = (node.lineno, items)
                order.append(name)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id in lists:
            items = res.items(node.value)
            if items is not None:
                lists[node.target.id][1].extend(items)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in lists and node.args:
                if node.func.attr == "extend":
                    lists[owner.id][1].extend(res.items(node.args[0]) or [res.token(node.args[0])])
                elif node.func.attr == "append":
                    lists[owner.id][1].append(res.token(node.args[0]))
        if isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] == "ServerArgs":
            kw: dict[str, Any] = {}
            for k in node.keywords:
                if k.arg is None:
                    continue
                items = res.items(k.value)
                kw[k.arg] = items if items is not None else res.token(k.value)
            kwargs_calls.append((node.lineno, kw))
        if isinstance(node, ast.Call) and node.args and ast.unparse(node.func).rsplit(".", 1)[-1] in _RUNNERS:
            # a command string handed to a shell (os.system, subprocess.run(..., shell=True)); docstrings and
            # comments that merely mention `vllm serve` are not launches
            cmd = res.value(node.args[0])
            if cmd is not None and LAUNCH.search(cmd):
                shell_lines.append((node.lineno, cmd))
    for name in order:
        line, tokens = lists[name]
        if not _is_launcher(tokens):
            continue
        problems: list[dict[str, Any]] = []
        tokens = interp_tokens(tokens, env, problems, line)
        srv = from_argv(tokens, source="python", line=line, name=f"{path.name}:{name}", env=env)
        if srv is not None:
            _fix_lines(srv, line, problems)
            pc.servers.append(srv)
    for line, kw in kwargs_calls:
        opts: dict[str, list[Any]] = {}
        for k, v in kw.items():
            key = k.replace("_", "-")
            opts[key] = list(v) if isinstance(v, list) else [True if v == "True" else v]
        problems = []
        srv = Server(engine="sglang", source="python", name=f"{path.name}:ServerArgs", line=line)
        sglang_server(opts, srv)
        _fix_lines(srv, line, [p for p in problems])
        for v in (x for vals in opts.values() for x in vals):
            if isinstance(v, str) and "${" in v:
                srv.problems.append(problem("unresolved_var", f"{v} is not a constant in {path.name}", line))
        pc.servers.append(srv)
    if shell_lines:
        scan_commands(pc, path, shell_lines, dict(env), source="python")
    return pc


def _fix_lines(srv: Server, line: int, problems: list[dict[str, Any]]) -> None:
    srv.problems[:0] = problems
    for a in srv.adapters:
        a.line = line
    for p in srv.problems:
        p["line"] = line
