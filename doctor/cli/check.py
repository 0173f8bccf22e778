"""`doctor check PATH…`: run every probe and report findings (the CI gate), with baselines."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from doctor import __version__
from doctor.cli.common import EXIT_OK, CliError, atomic_write, settings_of, tty_color
from doctor.core.model import display_path, fingerprint_of


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    from doctor.render import FORMATS

    p = sub.add_parser(name, help="run every probe and report findings (CI gate)")
    p.add_argument("paths", nargs="*", type=Path, default=[Path(".")], metavar="PATH")
    p.add_argument("--format", "-f", choices=FORMATS, default="console")
    p.add_argument("--output", "-o", type=Path, help="write the report to FILE instead of stdout")
    p.add_argument("--fail-on", choices=("error", "warning", "info", "never"), help="default: error")
    p.add_argument("--config", type=Path, help="settings file (doctor.toml or pyproject.toml)")
    p.add_argument("--baseline", type=Path, help="suppress findings recorded in this baseline file")
    p.add_argument("--write-baseline", type=Path, metavar="FILE", help="record current findings to FILE")
    p.add_argument("--verbose", "-v", action="store_true", help="show passing checks and evidence")
    p.add_argument("--no-color", action="store_true")
    p.set_defaults(handler=run)


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
    atomic_write(path, json.dumps(payload, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    from doctor.engine import check
    from doctor.render import RenderContext, render
    from probes import rule_registry

    settings = settings_of(args)
    if args.fail_on:
        settings.fail_on = args.fail_on
    baseline = _read_baseline(args.baseline) if args.baseline else None
    report = check(args.paths, settings, baseline=baseline)
    if args.write_baseline:
        _write_baseline(args.write_baseline, report)
        print(f"wrote {len(report.findings)} findings to baseline {args.write_baseline}", file=sys.stderr)
    color = args.format == "console" and not args.no_color and args.output is None and tty_color()
    ctx = RenderContext(
        rules=rule_registry(), verbose=args.verbose, color=color, version=__version__, settings_path=settings.source
    )
    text = render(report, args.format, ctx)
    if args.output:
        atomic_write(args.output, text)
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return EXIT_OK if args.write_baseline else report.exit_code
