"""Bounded YAML loading: every YAML doctor reads (serving configs, the registry, training configs, W&B
config.yaml, playbooks, a trainer config a job rewrites) comes through here.

`yaml.safe_load` builds a billion-laughs document cheaply (aliases share one Python object), but every
walk over the result (env interpolation, JSON facts, comparisons) then expands it. So documents are
composed first (C parser when available), the node graph is measured with aliases expanded
(memoized, cycle-safe), and anything larger than `MAX_NODES` expanded nodes, with more than
`MAX_ALIASES` aliases, or larger than `MAX_BYTES` is rejected with a ReadError before construction.
Merge keys (`<<: *default`) are resolved by the SafeConstructor as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from doctor.core.probe import ReadError

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-python PyYAML
    _Loader = yaml.SafeLoader

MAX_BYTES = 8 * 1024 * 1024
MAX_NODES = 200_000
MAX_ALIASES = 10_000


class YamlLimitError(ValueError):
    pass


def _measure(root: yaml.Node) -> tuple[int, int]:
    """(expanded node count, distinct alias references) of a composed document; cycles are rejected."""
    size: dict[int, int] = {}
    state: dict[int, int] = {}  # 1 = on stack, 2 = done
    refs = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            total = 1
            for child in _children(node):
                total += size[id(child)]
                if total > MAX_NODES:
                    raise YamlLimitError(f"aliases expand to more than {MAX_NODES} nodes (alias bomb?)")
            size[key] = total
            state[key] = 2
            continue
        if state.get(key) == 2:
            refs += 1
            continue
        if state.get(key) == 1:
            raise YamlLimitError("recursive alias (a node contains itself)")
        state[key] = 1
        stack.append((node, True))
        for child in _children(node):
            cs = state.get(id(child))
            if cs == 1:
                raise YamlLimitError("recursive alias (a node contains itself)")
            if cs == 2:
                refs += 1
                continue
            stack.append((child, False))
    if refs > MAX_ALIASES:
        raise YamlLimitError(f"more than {MAX_ALIASES} alias references")
    return size[id(root)], refs


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        out: list[yaml.Node] = []
        for k, v in node.value:
            out.append(k)
            out.append(v)
        return out
    return []


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


def load_yaml_text(text: str, path: Path, *, multi: bool = False) -> list[Any]:
    """All documents of a YAML text (a one-element list unless multi), bounded as described above."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise ReadError(path, f"YAML file larger than {MAX_BYTES} bytes; not parsed")
    loader = _Loader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _measure(node)
            docs.append(loader.construct_document(node))
            if not multi and len(docs) > 1:
                raise ReadError(path, "expected a single YAML document, found several")
    except YamlLimitError as exc:
        raise ReadError(path, f"YAML rejected: {exc}") from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ReadError(path, f"invalid YAML: {reason}", _where(exc)) from None
    except RecursionError:
        raise ReadError(path, "YAML nested too deeply") from None
    finally:
        loader.dispose()
    return docs


def load_yaml(path: Path, *, multi: bool = False) -> tuple[list[Any], str]:
    """Documents and raw text of a YAML file."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ReadError(path, f"YAML file is {size} bytes (limit {MAX_BYTES}); not parsed")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
    return load_yaml_text(text, path, multi=multi), text


def line_of(text: str, *needles: str) -> int:
    """1-based line of the first needle found in text (1 when none is)."""
    for needle in needles:
        if not needle:
            continue
        i = text.find(needle)
        if i >= 0:
            return text.count("\n", 0, i) + 1
    return 1
