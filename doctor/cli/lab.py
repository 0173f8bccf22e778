"""`doctor lab init ROLLOUT -o SPEC` · `doctor lab run SPEC [--format console|json|markdown] [--output FILE]`.

Exit codes (DESIGN.md, Lab): 0 some variant meets the target, 1 none does, 2 usage/internal errors
(130 when a variant's job was cancelled; a re-run resumes). Light: no torch (jobs run in subprocesses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from doctor.cli.common import CliError, atomic_write


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="prompt-only vs LoRA rank sweep vs QLoRA under one budget; pick a rank, ship a canary"
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lsub.required = True
    i = lsub.add_parser("init", help="write a lab spec (TOML) for a rollout")
    i.add_argument("rollout", type=Path, metavar="ROLLOUT")
    i.add_argument("-o", "--output", type=Path, required=True, metavar="SPEC", help="where to write the spec")
    i.add_argument("--force", action="store_true", help="overwrite an existing SPEC")
    i.set_defaults(handler=cmd_init)
    r = lsub.add_parser("run", help="run every variant as a job, compare, decide, register the canary")
    r.add_argument("spec", type=Path, metavar="SPEC")
    r.add_argument("--format", "-f", choices=("console", "json", "markdown"), default="console")
    r.add_argument("--output", "-o", type=Path, help="write the report to FILE instead of stdout")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    r.set_defaults(handler=cmd_run)


def cmd_init(args: argparse.Namespace) -> int:
    from doctor.jobs.resources import visible_gpus
    from doctor.lab.spec import LabSpecError, init_text, load_lab_spec

    if args.output.exists() and not args.force:
        raise CliError(f"{args.output} exists; pass --force to overwrite it")
    if not args.rollout.is_dir():
        raise CliError(f"{args.rollout}: no such rollout folder")
    try:
        text = init_text(args.rollout, args.output, gpu=bool(visible_gpus()))
        atomic_write(args.output, text)
        load_lab_spec(args.output)  # what init writes must load
    except LabSpecError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {args.output}; run it with: doctor lab run {args.output}", file=sys.stderr)
    return 0


class _Progress:
    """Whole-lab progress on stderr: one bar for the variants, one for the running job's steps."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.start()
            self.lab = self.bar.add_task("lab", total=None, note="")
            self.job = self.bar.add_task("job", total=None, note="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, e: dict[str, Any]) -> None:
        if self.bar is None:
            return
        k = e["kind"]
        if k == "variant_start":
            self.bar.update(self.lab, total=e["total"], completed=e["index"] - 1, description=f"lab: {e['variant']}")
            self.bar.reset(self.job, total=None, description=f"  {e['variant']}", note="starting")
        elif k == "job_created":
            self.bar.update(self.job, note=f"job {e['job']}")
        elif k in ("variant_reused", "variant_resumed"):
            self.bar.update(self.job, note=f"{k.split('_')[1]} job {e['job']}")
        elif k == "job_event":
            ev = e["event"]
            if ev.get("event") == "progress" and ev.get("phase") == "train":
                self.bar.update(self.job, total=ev.get("max_steps"), completed=ev.get("step"), note="training")
            elif ev.get("event") == "progress" and ev.get("phase") == "eval":
                self.bar.update(self.job, total=ev.get("total"), completed=ev.get("done"), note="evaluating")
            elif ev.get("event") == "metrics" and "loss" in ev:
                self.bar.update(self.job, note=f"training, loss {ev['loss']}")
            elif ev.get("event") == "log" and str(ev.get("message", "")).startswith("lab:"):
                self.bar.update(self.job, note="measuring latency")
            elif ev.get("event") == "comparison":
                self.bar.update(self.job, note="re-probed")
        elif k == "variant_done":
            self.bar.update(self.lab, advance=1)
            self.bar.update(self.job, note=e["state"] + (f": {e['error']}" if e.get("error") else ""))
        elif k == "lab_done":
            self.bar.update(self.lab, description="lab: done")


def cmd_run(args: argparse.Namespace) -> int:
    from doctor.jobs.api import JobLockError, LaunchError, SpecError
    from doctor.lab.run import LabCancelled, run_lab
    from doctor.lab.spec import LabSpecError, load_lab_spec
    from doctor.render import lab_report as R

    try:
        spec = load_lab_spec(args.spec)
    except LabSpecError as exc:
        raise CliError(str(exc)) from None
    show = not args.quiet and sys.stderr.isatty()
    try:
        with _Progress(show) as progress:
            report = run_lab(spec, progress if show else _log_line)
    except LabCancelled as exc:
        print(f"doctor: lab stopped: {exc}", file=sys.stderr)
        return 130
    except (SpecError, JobLockError, LaunchError, LabSpecError) as exc:
        raise CliError(f"lab {spec.name}: {exc}") from None
    if args.format == "console" and args.output is None:
        R.render_console(report)
    else:
        text = R.to_json(report) if args.format == "json" else R.to_markdown(report)
        if args.format == "console":
            text = R.to_markdown(report)
        if args.output:
            atomic_write(args.output, text)
        else:
            sys.stdout.write(text)
    print(f"lab report: {spec.lab_dir / 'report.json'} (wall {report['wall_s']} s)", file=sys.stderr)
    return 0 if any(v["meets_target"] for v in report["variants"]) else 1


def _log_line(e: dict[str, Any]) -> None:
    """Without a terminal (CI): one line per variant on stderr."""
    if e["kind"] == "variant_start":
        print(f"lab: [{e['index']}/{e['total']}] {e['variant']}", file=sys.stderr, flush=True)
    elif e["kind"] == "variant_done":
        extra = f" ({e['error']})" if e.get("error") else ""
        print(f"lab: {e['variant']}: job {e['job']} {e['state']}{extra}", file=sys.stderr, flush=True)
    elif e["kind"] in ("variant_reused", "variant_resumed"):
        print(f"lab: {e['variant']}: {e['kind'].split('_')[1]} job {e['job']}", file=sys.stderr, flush=True)
