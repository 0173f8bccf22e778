"""`doctor jobs run|list|show|cancel|logs|resume` — corrective jobs (docs/jobs.md).

Light: nothing here (or in doctor.jobs.api) imports torch; the worker subprocess does the training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from doctor.cli.common import CliError, settings_of
from doctor.render.jobs_report import duration, event_line, pairs, render_job, shown, when


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="corrective jobs: retrain / re-eval, then re-probe the outputs")
    jsub = p.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True

    r = jsub.add_parser("run", help="run a job spec (or the job triage chose) and wait for it")
    r.add_argument("spec", nargs="?", type=Path, help="job spec (JSON); see docs/jobs.md")
    r.add_argument(
        "--from-triage", nargs="?", const=Path("."), type=Path, metavar="PATH", help="run the job triage chose"
    )
    r.add_argument("--launcher", choices=("local", "accelerate", "torchrun", "slurm"), default="local")
    r.add_argument("--num-processes", type=int, help="processes (GPUs) for accelerate/torchrun/slurm")
    r.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="extra recipe override")
    r.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="NODE=CHOICE",
        help="with --from-triage: answer a triage question, as `doctor triage --answer` (repeatable)",
    )
    r.add_argument("--detach", action="store_true", help="start it in the background and return its id")
    r.add_argument("--dry-run", action="store_true", help="validate, print the spec, command and VRAM estimate")
    r.add_argument("--config", type=Path)
    r.add_argument("--format", "-f", choices=("console", "json"), default="console")
    r.set_defaults(handler=cmd_run)

    for action, helptext in (
        ("list", "list the jobs of a rollout"),
        ("show", "show one job: state, outputs, before/after comparison"),
        ("cancel", "stop a running job cleanly"),
        ("logs", "print a job's events"),
        ("resume", "re-run a failed/cancelled retrain from its last Trainer checkpoint"),
    ):
        q = jsub.add_parser(action, help=helptext)
        if action != "list":
            q.add_argument("job_id", metavar="ID")
        else:
            q.add_argument("rollout_arg", nargs="?", type=Path, metavar="ROLLOUT", help="rollout folder (as --rollout)")
        q.add_argument("--rollout", type=Path, help="rollout folder holding .doctor/ (default: search from .)")
        if action in ("list", "show", "logs"):
            q.add_argument("--format", "-f", choices=("console", "json"), default="console")
        if action == "logs":
            q.add_argument("--follow", action="store_true", help="keep printing until the job ends")
        if action == "resume":
            q.add_argument("--detach", action="store_true")
        q.set_defaults(handler={"list": cmd_list, "show": cmd_show, "cancel": cmd_cancel, "logs": cmd_logs,
                                "resume": cmd_resume}[action])  # fmt: skip


# ---------------------------------------------------------------- helpers


def _errors():
    from doctor.jobs.api import JobLockError, LaunchError, SpecError

    return (SpecError, JobLockError, LaunchError)


def _rollout_arg(args: argparse.Namespace) -> Path | None:

    pos = getattr(args, "rollout_arg", None)
    if pos is not None and args.rollout is not None and pos.resolve() != args.rollout.resolve():
        raise CliError(f"jobs {args.jobs_command}: ROLLOUT {pos} and --rollout {args.rollout} differ; give one")
    rollout = pos if pos is not None else args.rollout
    if rollout is not None and not rollout.is_dir():
        raise CliError(f"{rollout}: no such folder")
    return rollout


def _store(args: argparse.Namespace, job_id: str):
    from doctor.jobs.api import JobStore, find_store

    rollout = _rollout_arg(args)
    if rollout is not None:
        return JobStore(rollout)
    try:
        return find_store(job_id)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None


def _get(store, job_id: str):

    try:
        return store.get(job_id)
    except KeyError as exc:
        msg = str(exc.args[0])
        if "ambiguous" not in msg:
            msg += "; is it a job of another rollout? give that rollout's folder to --rollout"
        raise CliError(msg) from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class ProgressBar:
    """Renders worker events on stderr: a bar with step, loss, grad norm, lr and ETA (one line per ~10% off a TTY)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.metrics: dict[str, Any] = {}
        self.last_decile = -1
        self.width = 28

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "metrics":
            self.metrics.update({k: e[k] for k in ("loss", "grad_norm", "learning_rate") if k in e})
        elif kind == "progress" and e.get("phase") == "train":
            self.bar(int(e.get("step", 0)), int(e.get("max_steps", 0)) or 1, e.get("eta_s"))
        elif kind == "progress" and e.get("phase") == "eval":
            self.line(f"eval {e.get('done')}/{e.get('total')}", temporary=True)
        elif kind in ("log", "error", "cancelled"):
            self.line(f"[{kind}] {e.get('message', '')}")
        elif kind == "eval":
            acc = ", ".join(f"{s} {v['accuracy'] * 100:.0f}%" for s, v in (e.get("slices") or {}).items())
            self.line(f"[eval] {e.get('variant')}: {e.get('accuracy', 0) * 100:.1f}% ({acc})")

    def bar(self, step: int, total: int, eta: float | None) -> None:
        frac = min(step / total, 1.0)
        filled = int(frac * self.width)
        m = self.metrics
        parts = [f"step {step}/{total}"]
        for key, label, fmt in (
            ("loss", "loss", "{:.4g}"),
            ("grad_norm", "gn", "{:.4g}"),
            ("learning_rate", "lr", "{:.4g}"),
        ):
            if key in m:
                v = m[key]
                parts.append(f"{label} " + (fmt.format(v) if isinstance(v, (int, float)) else str(v)))
        parts.append(f"ETA {duration(eta)}")
        text = f"[{'█' * filled}{'·' * (self.width - filled)}] " + "  ".join(parts)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(text + "\n")

    def line(self, text: str, temporary: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("" if temporary else "\n"))
        elif not temporary:
            self.stream.write(text + "\n")
        self.stream.flush()


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from doctor.jobs import api
    from doctor.jobs.launchers import worker_command
    from doctor.jobs.spec import load_spec, validate_spec
    from doctor.playbook.recipe import RecipeError, apply_overrides, validate_overrides

    if (args.spec is None) == (args.from_triage is None):
        raise CliError("jobs run: give a SPEC file or --from-triage [PATH] (one of them)")
    try:
        if args.from_triage is not None:
            if not args.from_triage.exists():
                raise CliError(f"{args.from_triage}: no such file or directory")
            from doctor.cli.triage import parse_answers
            from doctor.playbook.tree import PlaybookError

            try:
                spec = api.spec_from_triage(args.from_triage, settings_of(args), parse_answers(args.answer))
            except PlaybookError as exc:
                raise CliError(f"--answer: {exc}") from None
        else:
            if args.answer:
                raise CliError("--answer answers triage questions: use it with --from-triage")
            spec = load_spec(args.spec)
        if args.override:
            extra = {}
            for item in args.override:
                k, sep, v = item.partition("=")
                if not sep:
                    raise CliError(f"--override {item!r}: expected KEY=VALUE")
                extra[k.strip()] = _parse_value(v.strip())
            try:
                validate_overrides(extra)
                if spec["kind"] != "retrain":
                    raise CliError("--override applies to retrain jobs")
                recipe = dict(spec["recipe"])
                recipe["data"] = dict(spec["data"])
                new = apply_overrides(recipe, extra)
                spec["data"] = new.pop("data")
                spec["recipe"] = new
                spec["overrides"] = {**spec.get("overrides", {}), **extra}
            except RecipeError as exc:
                raise CliError(f"--override: {exc}") from None
        if args.num_processes:
            spec["num_processes"] = args.num_processes
        spec = validate_spec(spec)
        warning = api.vram_warning(spec) if spec["kind"] == "retrain" else None
        if warning:
            print(f"doctor: warning: {warning}", file=sys.stderr)
        if args.dry_run:
            cmd = worker_command(Path(".doctor/jobs/<id>/spec.json"), args.launcher, spec.get("num_processes", 1))
            payload = {
                "spec": spec,
                "command": cmd,
                "vram": api.estimate_vram(spec) if spec["kind"] == "retrain" else None,
            }
            print(json.dumps(payload, indent=2))
            return 0
        if args.detach or args.launcher == "slurm":
            job_id = api.launch(spec, spec["rollout"], args.launcher)
            job = api.JobStore(spec["rollout"]).get(job_id)
            if args.format == "json":
                print(json.dumps(job.to_dict(), indent=2, default=str))
            else:
                print(f"job {job_id} {job.state} ({spec['kind']}); follow it with: doctor jobs logs {job_id} --follow "
                      f"--rollout {spec['rollout']}")  # fmt: skip
                for e in api.JobStore(spec["rollout"]).events(job_id):
                    if e.get("event") == "log":
                        print(f"  {e.get('message')}")
            return 0
        bar = ProgressBar()

        def created(job) -> None:
            src = (spec.get("source") or {}).get("triage")
            print(
                f"job {job.id}: {spec['kind']} ({spec.get('method', spec.get('variant', ''))}) on {spec['rollout']}"
                + (f" — chosen by triage ({src})" if src else ""),
                file=sys.stderr,
            )
            if spec.get("overrides"):
                print("  overrides: " + pairs(spec["overrides"]), file=sys.stderr)

        try:
            job = api.run(spec, spec["rollout"], args.launcher, on_event=bar, on_created=created)
        except KeyboardInterrupt:
            raise
    except _errors() as exc:
        raise CliError(str(exc)) from None
    if bar.tty:
        sys.stderr.write("\n")
    if args.format == "json":
        print(json.dumps(job.to_dict(), indent=2, default=str))
    else:
        print(render_job(job, api.JobStore(spec["rollout"])))
    from doctor.jobs.verdict import passed

    return 0 if passed(job) else 1


def cmd_list(args: argparse.Namespace) -> int:
    from doctor.jobs.api import JobStore, find_stores, reconcile

    rollout = _rollout_arg(args)
    if rollout is not None:
        stores = [JobStore(rollout)]
    else:  # the store at/above the working folder, else every store below it
        found = find_stores(Path("."))
        here = [s for s in found if Path.cwd().resolve().is_relative_to(s.root)]
        stores = here[:1] or found
    per_store = [(s, reconcile(s)) for s in stores]
    if args.format == "json":
        print(json.dumps([j.to_dict() for _, js in per_store for j in js], indent=2, default=str))
        return 0
    if not stores:
        print(
            f"no jobs: no job store (.doctor/jobs.sqlite) at, above or below {Path.cwd()}; "
            "a job lives in the rollout it ran on: doctor jobs list ROLLOUT"
        )
        return 0
    for i, (store, jobs) in enumerate(per_store):
        if len(per_store) > 1:
            print(("\n" if i else "") + f"{shown(store.root)}:")
        if not jobs:
            print(f"no jobs in {store.path}")
            continue
        print(f"{'ID':<23} {'KIND':<8} {'STATE':<10} {'VERDICT':<12} {'PROGRESS':<10} {'CREATED':<20} OUTPUT / ERROR")
        for j in jobs:
            prog = f"{j.step}/{j.max_steps}" if j.max_steps else "—"
            tail = j.error or j.outputs.get("adapter") or j.outputs.get("eval_table") or ""
            v = j.verdict
            verdict = v["verdict"] if v else "—"
            if v and j.kind == "reeval":  # a re-eval fixes nothing: it passes or fails its gate (exit code)
                verdict = "gate passed" if v.get("gate_passed") else "gate failed"
            print(f"{j.id:<23} {j.kind:<8} {j.state:<10} {verdict:<12} {prog:<10} {when(j.created):<20} {tail}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from doctor.jobs.api import reconcile

    store = _store(args, args.job_id)
    reconcile(store)
    job = _get(store, args.job_id)
    if args.format == "json":
        print(json.dumps({**job.to_dict(), "states": store.states(job.id)}, indent=2, default=str))
    else:
        print(render_job(job, store))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from doctor.jobs.api import cancel

    store = _store(args, args.job_id)
    job = _get(store, args.job_id)
    if job.done:
        print(f"job {job.id} already {job.state}")
        return 0
    cancel(job.id, store.root)
    deadline = time.time() + 60
    while time.time() < deadline:
        job = store.get(job.id)
        if job.done:
            break
        time.sleep(0.3)
    print(f"job {job.id}: {job.state}" + (f" ({job.error})" if job.error else " (stop requested)"))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    store = _store(args, args.job_id)
    job = _get(store, args.job_id)
    seq = 0
    while True:
        events = store.events(job.id, after_seq=seq)
        for e in events:
            print(json.dumps(e, default=str) if args.format == "json" else event_line(e), flush=True)
            seq = max(seq, e["seq"])  # printed in time order; the next poll starts after the newest
        if not args.follow or store.get(job.id).done:
            if args.follow:
                for e in store.events(job.id, after_seq=seq):
                    print(json.dumps(e, default=str) if args.format == "json" else event_line(e))
            break
        time.sleep(0.5)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from doctor.jobs import api

    store = _store(args, args.job_id)
    job = _get(store, args.job_id)
    try:
        if args.detach:
            print(f"job {api.resume(job.id, store.root)} started (resuming {job.id})")
            return 0
        result = api.resume(job.id, store.root, block=True, on_event=ProgressBar())
    except _errors() as exc:
        raise CliError(str(exc)) from None
    print(render_job(result, store))
    from doctor.jobs.verdict import passed

    return 0 if passed(result) else 1
