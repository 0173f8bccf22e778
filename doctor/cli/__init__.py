"""Command line: `doctor check|inspect|rules|explain|watch|triage|playbooks|jobs|fix|init|lab|tui`.

One module per command under doctor/cli/, each with `add_parser(sub, name)` setting its `handler`; COMMANDS
lists them all explicitly (a command that fails to import is an error, never silently dropped).

Exit codes (DESIGN.md): 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage, config or
internal error — never hidden by --fail-on never. Heavy modules (Textual, the training stack) are
imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from doctor import __version__
from doctor.cli.common import EXIT_ERROR, EXIT_OK, CliError, Parser
from doctor.core.settings import ConfigError

# Every subcommand, in `doctor --help` order: name → module under doctor/cli/.
COMMANDS = {
    "check": "check",
    "inspect": "inspect",
    "rules": "rules",
    "explain": "explain",
    "watch": "watch",
    "triage": "triage",
    "playbooks": "playbooks",
    "jobs": "jobs",
    "fix": "fix",
    "init": "init",
    "tui": "tui",
    "lab": "lab",
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="doctor",
        description="peft-doctor: diagnose LoRA/QLoRA training, adapters, eval slices and serving.",
    )
    parser.add_argument("--version", action="version", version=f"peft-doctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        importlib.import_module(f"doctor.cli.{module}").add_parser(sub, name)
    return parser


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command actually chosen (`doctor jobs run`), following each subparsers' dest."""
    while parser._subparsers is not None:
        action = parser._subparsers._group_actions[0]
        chosen = getattr(args, action.dest, None)
        if chosen not in action.choices:  # type: ignore[operator]
            break
        parser = action.choices[chosen]  # type: ignore[index]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the (sub)subcommand they were given to, as its own errors do
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        args = parser.parse_args(["tui"])
    try:
        return args.handler(args)
    except (CliError, ConfigError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        from doctor.engine import UsageError

        if isinstance(exc, UsageError):
            print(f"doctor: {exc}", file=sys.stderr)
        else:
            print(f"doctor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
            if os.environ.get("DOCTOR_DEBUG"):
                raise
        return EXIT_ERROR
