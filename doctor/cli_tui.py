"""`doctor tui [PATH…]` (and plain `doctor`): the Textual app. Textual is imported only here, lazily."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="the Textual app: findings, plots, playbook, corrective jobs")
    p.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH")
    p.add_argument("--config", type=Path, help="settings file (doctor.toml or pyproject.toml)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from doctor.cli import _settings
    from doctor.engine import UsageError

    for p in args.paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
    settings = _settings(args)
    from doctor.tui import make_app

    make_app(args.paths, settings).run()
    return 0
