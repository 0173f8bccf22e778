"""`doctor watch PATH…`: follow growing training logs and print new findings as they appear."""

from __future__ import annotations

import argparse
from pathlib import Path

from doctor.cli.common import EXIT_FINDINGS, EXIT_OK, CliError, settings_of


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="follow growing training logs and print new findings")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--config", type=Path)
    p.add_argument("--interval", type=float, default=0.25, help="poll interval in seconds")
    p.add_argument("--fail-on", choices=("error", "warning", "info", "never"), help="exit 1 on Ctrl-C if a finding")
    p.set_defaults(handler=run)


def _training_logs(folder: Path) -> list[Path]:
    """Every family's formats decide: a file another family claims (an eval CSV with a loss column) is no log."""
    from probes import discover

    return [a.path for a in discover(folder) if a.kind == "training_log"]


def run(args: argparse.Namespace) -> int:
    from probes.training.watch import run_watch

    for p in args.paths:
        if not p.exists():
            raise CliError(f"{p}: no such file or directory")
    from doctor.core.model import fail_rank

    settings = settings_of(args)
    if args.fail_on:
        settings.fail_on = args.fail_on
    gate, failing = fail_rank(settings.fail_on), []
    try:
        run_watch(
            args.paths,
            settings,
            interval=args.interval,
            on_finding=lambda f: failing.append(f.severity.rank >= gate),
            logs_under=_training_logs,
        )
    except KeyboardInterrupt:
        pass
    # Stopped (Ctrl-C) or done: exit as `check` would on what was reported.
    return EXIT_FINDINGS if any(failing) else EXIT_OK
