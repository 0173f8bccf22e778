"""`doctor fix [PATH] [--attempts N] [--budget MINUTES] [--format console|json]` — the escalating fix loop.

Exit 0 only when the final verdict is `fixed`; 1 otherwise; 2 for usage/internal errors (DESIGN.md).
Progress goes to stderr (a rich progress bar on a terminal, a line per attempt otherwise); the report
(console text or `peft-doctor/fix/1` JSON) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from doctor.cli.common import CliError, settings_of
from doctor.render.fix_report import render, value_text, version_text


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    from doctor.jobs import DEFAULT_ATTEMPTS, DEFAULT_BUDGET_MIN

    p = sub.add_parser(name, help="triage → retrain → re-probe → verdict, repeated until fixed or out of budget")
    p.add_argument("path", nargs="?", type=Path, default=Path("."), help="rollout folder (with rollout.toml)")
    p.add_argument(
        "--attempts", type=int, default=DEFAULT_ATTEMPTS, help=f"most jobs to run (default {DEFAULT_ATTEMPTS})"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_MIN,
        metavar="MINUTES",
        help=f"wall-time budget (default {DEFAULT_BUDGET_MIN:g} min; a job still running at the end is cancelled)",
    )
    p.add_argument("--answer", action="append", default=[], metavar="NODE=CHOICE", help="answer a triage question")
    p.add_argument("--config", type=Path)
    p.add_argument("--format", "-f", choices=("console", "json"), default="console")
    p.set_defaults(handler=cmd_fix)


class _Progress:
    """Job events → a rich progress bar (stderr) for the current attempt; plain lines when not a terminal."""

    def __init__(self, attempts: int) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.attempts = attempts
        self.progress = None
        self.task = None
        self.metrics: dict[str, Any] = {}

    def attempt(self, e: dict[str, Any]) -> None:
        if e["event"] == "attempt":
            changes = (
                ", ".join(f"{k} {value_text(a)} → {value_text(b)}" for k, (a, b) in e["changes"].items())
                or "no recipe change"
            )
            self.console.print(f"[bold]attempt {e['attempt']}/{self.attempts}[/]: {changes}")
            self.console.print(f"  why: {e['why']}", style="dim", highlight=False)
            self._start()
        else:
            self._stop()
            style = {"fixed": "bold green", "partly_fixed": "bold yellow"}.get(e["verdict"], "bold red")
            self.console.print(
                f"  → {version_text(e['version'])} [{style}]{e['verdict'].replace('_', ' ')}[/] in {e['wall_s']:.0f}s "
                f"(registry: {e.get('registry_status') or 'not registered'})",
                highlight=False,
            )
            self.console.print(f"    {e['verdict_why']}", style="dim", highlight=False)

    def _start(self) -> None:
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("  {task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
            console=self.console, transient=True,
        )  # fmt: skip
        self.progress.start()
        self.task = self.progress.add_task("starting", total=None, info="")

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "metrics":
            self.metrics.update({k: e[k] for k in ("loss", "grad_norm") if isinstance(e.get(k), (int, float))})
        if self.progress is None or self.task is None:
            return
        if kind == "progress" and e.get("phase") == "train":
            info = "  ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
            self.progress.update(
                self.task, description="train", total=e.get("max_steps") or None, completed=e.get("step", 0), info=info
            )
        elif kind == "progress" and e.get("phase") == "eval":
            self.progress.update(self.task, description="eval", total=e.get("total"), completed=e.get("done"), info="")
        elif kind == "log" and "re-probing" in str(e.get("message")):
            self.progress.update(self.task, description="re-probe", total=None, info="")


def cmd_fix(args: argparse.Namespace) -> int:
    from doctor.cli.triage import parse_answers
    from doctor.jobs.api import JobLockError, LaunchError, SpecError
    from doctor.jobs.fixloop import run_fix
    from doctor.playbook.tree import PlaybookError

    if args.attempts < 1:
        raise CliError("fix: --attempts must be at least 1")
    if args.budget <= 0:
        raise CliError("fix: --budget must be a positive number of minutes")
    if not args.path.is_dir():
        raise CliError(f"{args.path}: no such folder")
    if not (args.path / "rollout.toml").is_file():
        from doctor.jobs.readiness import init_hint

        raise CliError(f"{args.path}: no rollout.toml, so no job can run here; {init_hint(args.path)}")
    progress = _Progress(args.attempts)
    try:
        report = run_fix(
            args.path,
            attempts=args.attempts,
            budget_min=args.budget,
            settings=settings_of(args),
            answers=parse_answers(args.answer),
            on_event=progress,
            on_attempt=progress.attempt,
        )
    except PlaybookError as exc:
        raise CliError(f"--answer: {exc}") from None
    except (SpecError, JobLockError, LaunchError) as exc:
        raise CliError(str(exc)) from None
    finally:
        progress._stop()
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render(report))
    return 0 if report["verdict"] == "fixed" else 1
