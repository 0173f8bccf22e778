"""Command line: `doctor check|inspect|rules|explain|watch|triage|playbooks|jobs|lab|tui`.

Exit codes (DESIGN.md): 0 nothing at or above --fail-on; 1 findings at or above it; 2 usage, config or
internal error — never hidden by --fail-on never. Heavy modules (Textual, the training stack) are
imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from doctor import __version__
from doctor.core.model import display_path, fingerprint_of
from doctor.core.settings import ConfigError, Settings, load_settings, validate_against

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A usage or input problem: printed as one line, exit 2."""


def _add_check(sub: argparse._SubParsersAction) -> None:
    from doctor.render import FORMATS

    p = sub.add_parser("check", help="run every probe and report findings (CI gate)")
    p.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH")
    p.add_argument("--format", "-f", choices=FORMATS, default="console")
    p.add_argument("--output", "-o", type=Path, help="write the report to FILE instead of stdout")
    p.add_argument("--fail-on", choices=("error", "warning", "info", "never"), help="default: error")
    p.add_argument("--config", type=Path, help="settings file (doctor.toml or pyproject.toml)")
    p.add_argument("--baseline", type=Path, help="suppress findings recorded in this baseline file")
    p.add_argument("--write-baseline", type=Path, metavar="FILE", help="record current findings to FILE")
    p.add_argument("--verbose", "-v", action="store_true", help="show passing checks and evidence")
    p.add_argument("--no-color", action="store_true")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (`doctor check: argument --fail-on: invalid choice …`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="doctor",
        description="peft-doctor: diagnose LoRA/QLoRA training, adapters, eval slices and serving.",
    )
    parser.add_argument("--version", action="version", version=f"peft-doctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_check(sub)

    p = sub.add_parser("inspect", help="show what doctor sees: each artifact's kind and facts")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")
    p.add_argument("--matrix", action="store_true", help="print the serving compatibility matrix")
    p.add_argument("--config", type=Path)

    p = sub.add_parser("rules", help="list every rule")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")

    p = sub.add_parser("explain", help="explain one rule")
    p.add_argument("rule_id", metavar="ID")

    p = sub.add_parser("watch", help="follow growing training logs and print new findings")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--config", type=Path)
    p.add_argument("--interval", type=float, default=0.25, help="poll interval in seconds")
    p.add_argument("--fail-on", choices=("error", "warning", "info", "never"), help="exit 1 on Ctrl-C if a finding")

    for name, mod in _EXTRA_COMMANDS.items():
        try:
            module = __import__(mod, fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        module.add_parser(sub, name)
    return parser


# Subcommands that live in their own modules (registered when present).
_EXTRA_COMMANDS = {
    "triage": "doctor.cli.triage",
    "playbooks": "doctor.cli.playbooks",
    "jobs": "doctor.cli.jobs",
    "fix": "doctor.cli.fix",
    "init": "doctor.cli.init",
    "tui": "doctor.cli.tui",
    "lab": "doctor.cli.lab",
}


def _settings(args: argparse.Namespace) -> Settings:
    from probes import rule_registry

    settings = load_settings(getattr(args, "config", None))
    validate_against(settings, rule_registry())
    return settings


def _read_baseline(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"{path}: cannot read baseline: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"{path}: baseline is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != "peft-doctor/baseline/1":
        raise CliError(f"{path}: not a peft-doctor baseline (schema peft-doctor/baseline/1 expected)")
    out: set[str] = set()
    for e in data.get("findings", []):
        if not isinstance(e, dict):
            continue
        if isinstance(e.get("fingerprint"), str):
            out.add(e["fingerprint"])  # as written (paths relative to the folder doctor ran in)
        if isinstance(e.get("path"), str) and isinstance(e.get("rule"), str) and e["path"]:
            # paths are relative to the baseline's folder: the same baseline works from any folder
            shown = display_path(path.parent / e["path"])
            out.add(fingerprint_of(e["rule"], shown, e.get("locator")))
    return out


def _baseline_path(path: Path | None, folder: Path) -> str:
    """A finding's path relative to the baseline file's folder (`../` when beside it), so a committed baseline
    works in any checkout and from any folder."""
    if path is None:
        return ""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def _write_baseline(path: Path, report) -> None:
    entries = []
    for f in report.findings:
        shown = _baseline_path(f.path, path.parent)
        entries.append({"fingerprint": f.fingerprint(shown), "rule": f.rule, "path": shown, "locator": f.locator})
    payload = {"schema": "peft-doctor/baseline/1", "tool": f"peft-doctor {__version__}", "findings": entries}
    _atomic_write(path, json.dumps(payload, indent=2) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def cmd_check(args: argparse.Namespace) -> int:
    from doctor.engine import check
    from doctor.render import RenderContext, render
    from probes import rule_registry

    settings = _settings(args)
    if args.fail_on:
        settings.fail_on = args.fail_on
    baseline = _read_baseline(args.baseline) if args.baseline else None
    report = check(args.paths, settings, baseline=baseline)
    if args.write_baseline:
        _write_baseline(args.write_baseline, report)
        print(f"wrote {len(report.findings)} findings to baseline {args.write_baseline}", file=sys.stderr)
    color = args.format == "console" and not args.no_color and args.output is None and _tty_color()
    ctx = RenderContext(
        rules=rule_registry(), verbose=args.verbose, color=color, version=__version__, settings_path=settings.source
    )
    text = render(report, args.format, ctx)
    if args.output:
        _atomic_write(args.output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return EXIT_OK if args.write_baseline else report.exit_code


def _tty_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def cmd_inspect(args: argparse.Namespace) -> int:
    from doctor.engine import scan
    from doctor.render.inspect_view import read_errors, render_inspect

    settings = _settings(args)
    report = scan(args.paths, settings)
    sys.stdout.write(render_inspect(report, args.format, matrix=args.matrix))
    return EXIT_FINDINGS if read_errors(report) else EXIT_OK  # an input it could not read, as `check` says


def cmd_rules(args: argparse.Namespace) -> int:
    from probes import rule_registry

    rules = list(rule_registry())
    if args.format == "json":
        payload = [
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity.value,
                "symptoms": list(r.symptoms),
                "params": r.params,
            }
            for r in rules
        ]
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    for r in rules:
        tags = ", ".join(r.symptoms)
        print(f"{r.id}  {r.severity.value:<7}  {r.title}" + (f"  [{tags}]" if tags else ""))
    print(f"\n{len(rules)} rules. `doctor explain ID` for details.")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from probes import rule_registry

    try:
        r = rule_registry().get(args.rule_id)
    except KeyError:
        raise CliError(f"unknown rule {args.rule_id!r}; `doctor rules` lists them") from None
    print(f"{r.id}: {r.title}")
    print(f"severity: {r.severity.value}" + (f"   symptoms: {', '.join(r.symptoms)}" if r.symptoms else ""))
    print()
    print(r.explanation)
    print()
    print(f"Fix: {r.fix}")
    if r.params:
        print()
        print(f"Settings ([thresholds.{r.id}] in doctor.toml):")
        for k, v in r.params.items():
            print(f"  {k} = {v!r}")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from probes.training.watch import run_watch

    for p in args.paths:
        if not p.exists():
            raise CliError(f"{p}: no such file or directory")
    from doctor.core.model import fail_rank

    settings = _settings(args)
    if args.fail_on:
        settings.fail_on = args.fail_on
    gate, failing = fail_rank(settings.fail_on), []
    try:
        run_watch(
            args.paths, settings, interval=args.interval, on_finding=lambda f: failing.append(f.severity.rank >= gate)
        )
    except KeyboardInterrupt:
        pass
    # Stopped (Ctrl-C) or done: exit as `check` would on what was reported.
    return EXIT_FINDINGS if any(failing) else EXIT_OK


_COMMANDS = {"check": cmd_check, "inspect": cmd_inspect, "rules": cmd_rules, "explain": cmd_explain, "watch": cmd_watch}


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
        argv = ["tui"] if "tui" in parser._subparsers._group_actions[0].choices else ["--help"]  # type: ignore[union-attr]
        args = parser.parse_args(argv)
    handler = _COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
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
