"""`doctor tui [PATH…]` (and plain `doctor`): the Textual app. Textual is imported only here, lazily."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doctor.cli.common import CliError, settings_of


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="the Textual app: findings, plots, playbook, corrective jobs")
    p.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH")
    p.add_argument("--config", type=Path, help="settings file (doctor.toml or pyproject.toml)")
    p.set_defaults(handler=run)


def no_terminal() -> str | None:
    """Why the app cannot run here, or None. Without a terminal on stdin it gets no keys, and with stdout
    redirected its screen lands in a file: it would run until killed, writing escape codes."""
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        try:
            if stream is None or not stream.isatty():
                return f"{name} is not a terminal"
        except (ValueError, OSError):  # closed or detached stream
            return f"{name} is not a terminal"
    return None


def run(args: argparse.Namespace) -> int:
    from doctor.engine import UsageError

    for p in args.paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
    why = no_terminal()
    if why is not None:  # checked before anything slow is imported: the answer comes at once
        raise CliError(f"the app needs a terminal ({why}); for a headless run use `doctor check PATH`")
    settings = settings_of(args)
    from doctor.tui import make_app

    make_app(args.paths, settings).run()
    return 0
