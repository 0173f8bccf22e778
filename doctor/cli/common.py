"""What every `doctor` subcommand shares: exit codes, the one-line usage error, settings, atomic writes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from doctor.core.settings import Settings, load_settings, validate_against

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A usage or input problem: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (`doctor check: argument --fail-on: invalid choice …`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings a command runs with (`--config FILE`, else doctor.toml / pyproject.toml), validated
    against the rule registry (an unknown rule id in `disable` is a usage error, not a silent pass)."""
    from probes import rule_registry

    settings = load_settings(getattr(args, "config", None))
    validate_against(settings, rule_registry())
    return settings


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def tty_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ
