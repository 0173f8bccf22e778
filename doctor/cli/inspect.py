"""`doctor inspect PATH…`: what doctor sees — each artifact's kind and facts (and the serving matrix)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doctor.cli.common import EXIT_FINDINGS, EXIT_OK, settings_of


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="show what doctor sees: each artifact's kind and facts")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")
    p.add_argument("--matrix", action="store_true", help="print the serving compatibility matrix")
    p.add_argument("--config", type=Path)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from doctor.engine import scan
    from doctor.render.inspect_view import read_errors, render_inspect

    settings = settings_of(args)
    report = scan(args.paths, settings)
    sys.stdout.write(render_inspect(report, args.format, matrix=args.matrix))
    return EXIT_FINDINGS if read_errors(report) else EXIT_OK  # an input it could not read, as `check` says
