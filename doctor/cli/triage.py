"""`doctor triage PATH`: the diagnosis a walk of the playbooks reaches, with ranked causes and actions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doctor.cli.common import CliError, settings_of


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="walk the playbooks to a diagnosis with ranked causes and actions")
    p.add_argument("path", nargs="?", type=Path, default=Path("."), metavar="PATH")
    p.add_argument("--format", "-f", choices=("console", "json", "markdown"), default="console")
    p.add_argument("--config", type=Path)
    p.add_argument("--playbook", default="triage", help="entry playbook (default: triage)")
    p.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="NODE=CHOICE",
        help="answer a question headlessly (NODE or PLAYBOOK.NODE); repeatable",
    )
    p.set_defaults(handler=run)


def parse_answers(items: list[str]) -> dict[str, str]:

    answers = {}
    for item in items:
        node, sep, choice = item.partition("=")
        if not sep or not node or not choice:
            raise CliError(f"--answer {item!r}: expected NODE=CHOICE")
        answers[node.strip()] = choice.strip()
    return answers


def run(args: argparse.Namespace) -> int:
    from doctor.engine import UsageError
    from doctor.playbook.tree import PlaybookError
    from doctor.playbook.triage import run_triage
    from doctor.render.triage import render_console, render_json, render_markdown

    if not args.path.exists():
        raise UsageError(f"{args.path}: no such file or directory")
    try:
        results = run_triage([args.path], settings_of(args), parse_answers(args.answer), entry=args.playbook)
    except PlaybookError as exc:
        raise CliError(str(exc)) from None
    except KeyError:
        raise CliError(f"unknown playbook {args.playbook!r}; `doctor playbooks validate` lists them") from None
    render = {"console": render_console, "json": render_json, "markdown": render_markdown}[args.format]
    sys.stdout.write(render(results))
    # Nothing recognised under the path: say so with exit 1, like `doctor check` (a gate must not pass).
    return 1 if all(not r.evidence.artifacts for r in results) else 0
