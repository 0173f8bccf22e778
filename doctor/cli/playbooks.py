"""`doctor playbooks list|validate|show NAME`."""

from __future__ import annotations

import argparse
from pathlib import Path

from doctor.cli.common import CliError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="validate playbooks or draw one as a tree")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    li = verbs.add_parser("list", help="list the playbooks: name, title, nodes, leaves")
    li.add_argument("--dir", type=Path, help="playbook folder (default: the shipped playbooks)")
    v = verbs.add_parser("validate", help="load and validate every playbook")
    v.add_argument("--dir", type=Path, help="playbook folder (default: the shipped playbooks)")
    s = verbs.add_parser("show", help="draw a playbook's tree")
    s.add_argument("name")
    s.add_argument("--dir", type=Path)
    p.set_defaults(handler=run)


def _count(n: int, noun: str) -> str:
    plural = "leaves" if noun == "leaf" else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def run(args: argparse.Namespace) -> int:
    from doctor.playbook.tree import PLAYBOOK_DIR, PlaybookError, load_all
    from probes import rule_registry

    directory = args.dir or PLAYBOOK_DIR
    try:
        books = load_all(directory, rule_ids={r.id for r in rule_registry()})
    except PlaybookError as exc:
        raise CliError(str(exc)) from None
    if args.verb == "list":
        from doctor.playbook.tree import node_kind

        width = max((len(n) for n in books), default=0)
        for name, pb in books.items():
            leaves = sum(1 for node in pb.nodes.values() if node_kind(node) == "leaf")
            print(f"{name:<{width}}  {pb.title}  ({_count(len(pb.nodes), 'node')}, {_count(leaves, 'leaf')})")
        print(f"\n{_count(len(books), 'playbook')} in {directory}. `doctor playbooks show NAME` draws one.")
        return 0
    if args.verb == "validate":
        for name, pb in books.items():
            print(f"✓ {name}: {len(pb.nodes)} nodes ({pb.path})")
        print(f"{len(books)} playbooks valid")
        return 0
    if args.name not in books:
        raise CliError(f"unknown playbook {args.name!r}; known: {', '.join(books)}")
    print("\n".join(draw(books[args.name])))
    return 0


def draw(pb) -> list[str]:
    """The tree from the entry; a node reached twice is drawn once and referenced after."""
    from doctor.playbook.tree import node_kind

    lines = [f"{pb.name}: {pb.title}"]
    seen: set[str] = set()

    def label(node_id: str) -> str:
        node = pb.nodes[node_id]
        kind = node_kind(node)
        if kind == "leaf":
            causes = ", ".join(c["cause"] for c in node.get("causes") or []) or "no cause"
            return f"■ {node_id} — {causes}"
        if kind == "visit":
            return f"▸ {node_id}: visit playbook {node['visit']}"
        asks = " [asks you]" if "ask" in node else ""
        return f"? {node_id}: {node['question']}{asks}"

    def walk(node_id: str, prefix: str, branch: str, last: bool) -> None:
        connector = "└─" if last else "├─"
        tag = f"{branch}: " if branch else ""
        if node_id in seen:
            lines.append(f"{prefix}{connector} {tag}→ {node_id} (above)")
            return
        seen.add(node_id)
        lines.append(f"{prefix}{connector} {tag}{label(node_id)}")
        node = pb.nodes[node_id]
        children: list[tuple[str, str]] = []
        if node_kind(node) == "visit" and node.get("next"):
            children.append(("then", node["next"]))
        elif node_kind(node) == "question":
            children.extend((k, node[k]) for k in ("yes", "no", "unknown") if k in node)
            children.extend((k, v) for k, v in (node.get("branches") or {}).items())
        inner = prefix + ("   " if last else "│  ")
        for i, (b, target) in enumerate(children):
            walk(target, inner, b, i == len(children) - 1)

    walk(pb.entry, "", "", True)
    return lines
