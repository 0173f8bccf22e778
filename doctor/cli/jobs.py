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
    from doctor.cli import CliError

    pos = getattr(args, "rollout_arg", None)
    if pos is not None and args.rollout is not None and pos.resolve() != args.rollout.resolve():
        raise CliError(f"jobs {args.jobs_command}: ROLLOUT {pos} and --rollout {args.rollout} differ; give one")
    rollout = pos if pos is not None else args.rollout
    if rollout is not None and not rollout.is_dir():
        raise CliError(f"{rollout}: no such folder")
    return rollout


def _store(args: argparse.Namespace, job_id: str):
    from doctor.cli import CliError
    from doctor.jobs.api import JobStore, find_store

    rollout = _rollout_arg(args)
    if rollout is not None:
        return JobStore(rollout)
    try:
        return find_store(job_id)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None


def _get(store, job_id: str):
    from doctor.cli import CliError

    try:
        return store.get(job_id)
    except KeyError as exc:
        msg = str(exc.args[0])
        if "ambiguous" not in msg:
            msg += "; is it a job of another rollout? give that rollout's folder to --rollout"
        raise CliError(msg) from None


def _num(v: Any) -> str:
    """A number for people: floats to 4 significant digits (0.1591, 0.0002, 1e-05); the rest as str()."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_num(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    return str(v)


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in d.items())


def _shown(path: str | Path | None) -> str:
    """A path relative to the working folder when under it, else as given."""
    from doctor.core.model import display_path

    return display_path(Path(path)) if path else ""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


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
        parts.append(f"ETA {_fmt_s(eta)}")
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
    from doctor.cli import CliError
    from doctor.jobs import api
    from doctor.jobs.launchers import worker_command
    from doctor.jobs.recipe import RecipeError, apply_overrides, validate_overrides
    from doctor.jobs.spec import load_spec, validate_spec

    if (args.spec is None) == (args.from_triage is None):
        raise CliError("jobs run: give a SPEC file or --from-triage [PATH] (one of them)")
    try:
        if args.from_triage is not None:
            if not args.from_triage.exists():
                raise CliError(f"{args.from_triage}: no such file or directory")
            from doctor.cli import _settings
            from doctor.cli.triage import parse_answers
            from doctor.playbook.tree import PlaybookError

            try:
                spec = api.spec_from_triage(args.from_triage, _settings(args), parse_answers(args.answer))
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
                print("  overrides: " + _pairs(spec["overrides"]), file=sys.stderr)

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
            print(("\n" if i else "") + f"{_shown(store.root)}:")
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
            print(f"{j.id:<23} {j.kind:<8} {j.state:<10} {verdict:<12} {prog:<10} {_when(j.created):<20} {tail}")
    return 0


def render_job(job, store) -> str:
    from doctor.jobs.compare import render_comparison

    v = job.verdict
    head = f"Job {job.id}  {job.kind}  {job.state.upper()}"
    if v:
        head += f"  verdict: {v['verdict'].replace('_', ' ').upper()}"
        if job.kind == "reeval":
            head += f" (gate {'passed' if v.get('gate_passed') else 'failed'})"
    fix = ((job.spec or {}).get("source") or {}).get("fix_attempt")
    if fix:
        head += f"  (doctor fix attempt {fix})"
    lines = [head]
    if v:
        lines.append(f"  {v['why']}")
    spec = job.spec
    lines.append(f"  rollout:   {spec.get('rollout')}")
    if job.kind == "retrain":
        base = spec.get("base_model_name") or spec.get("base_model") or "not recorded"
        lines.append(f"  method:    {spec.get('method')}   base: {base}")
        if spec.get("overrides"):
            from doctor.jobs.recipe import describe_overrides

            lines.append("  overrides: " + describe_overrides(spec["overrides"], spec.get("recipe")))
        d = spec.get("data", {})
        slices = ", ".join(map(str, d.get("train_slices") or [])) or "not listed"
        lines.append(f"  data:      {d.get('train')} (slices: {slices})")
    else:
        lines.append(f"  eval:      {spec.get('eval_set')}  adapter: {spec.get('adapter') or '(base only)'}")
    lines.append(f"  progress:  step {job.step}/{job.max_steps}   ETA {_fmt_s(job.eta_s)}")
    dur = (job.ended or time.time()) - job.started if job.started else None
    lines.append(
        f"  created {_when(job.created)}  started {_when(job.started)}  ended {_when(job.ended)}  ({_fmt_s(dur)})"
    )
    if job.error:
        lines.append(f"  error:     {job.error}")
    o = job.outputs
    if o.get("adapter"):
        lines.append(f"  adapter:   {o['adapter']} (version {o.get('version')})")
    if o.get("registry"):
        e = o["registry"]["entry"]
        lines.append(
            f"  registry:  {e['name']} v{e['version']} status {e.get('status')} rollback_to "
            + (f"v{e['rollback_to']}" if e.get("rollback_to") else "none (no earlier version passed the gate)")
        )
    if o.get("eval_table"):
        lines.append(f"  eval:      {o['eval_table']}")
    if o.get("sbatch_script"):
        lines.append(f"  sbatch:    {o['sbatch_script']}  slurm id: {o.get('slurm_job_id') or '(not submitted)'}")
    if job.comparison:
        lines.append("")
        lines.extend(render_comparison(job.comparison))
        lines.extend(render_slice_stats(v))
    if job.state == "succeeded":
        lines.append("")
        lines.extend(next_steps(job))
    return "\n".join(lines)


def render_slice_stats(v: dict[str, Any] | None) -> list[str]:
    """The paired per-slice statistics the verdict used (after vs baseline), one row per slice."""
    rows = (v or {}).get("slices_vs_baseline") or []
    if not rows:
        return []
    lines = ["", f"  paired vs baseline: {'slice':<12} {'n':>4} {'delta':>8} {'95% CI':>17} {'p_adj':>6}  status"]
    for s in rows:
        ci = f"{s['ci_low'] * 100:+.1f}…{s['ci_high'] * 100:+.1f}pp"
        cells = f"{s['n']:>4} {s['delta'] * 100:>+7.1f}pp {ci:>17} {s['p_adj']:>6.3f}"
        lines.append(f"  {'':<20}{s['slice']:<12} {cells}  {s['status']}")
    return lines


def _current_entry(reg: dict[str, Any]) -> dict[str, Any]:
    """The job's registry entry as the registry holds it now (a user may have promoted it since)."""
    entry = reg.get("entry") or {}
    try:
        from probes.registry.store import load

        now = load(Path(reg["path"])).get(entry.get("name"), entry.get("version"))
        return {**entry, **now} if now else entry
    except Exception:
        return entry


def next_steps(job) -> list[str]:
    """What to do with a succeeded job's outputs (what the code did, and what it left to the user)."""
    import os

    spec, o = job.spec, job.outputs
    root = Path(spec.get("rollout") or ".")
    lines: list[str] = []
    if job.kind == "retrain" and o.get("adapter"):
        new = Path(o["adapter"])
        rel = os.path.relpath(new, root)
        lines.append(f"Next: doctor check {_shown(new)}   (the new adapter, version {o.get('version')})")
        if o.get("registry"):
            e = _current_entry(o["registry"])
            rb = e.get("rollback_to")
            reg = f"registry v{e.get('version')} is {json.dumps(e.get('status'))}" + (
                f" (rollback_to v{rb})" if rb else ""
            )
            if e.get("status") == "rejected":
                reg += "; it did not fix the rollout: do not serve it (doctor fix tries further attempts)"
            elif e.get("status") != "active":
                reg += '; mark it "active" in registry.yaml once it checks out'
        elif o.get("registry_error"):
            reg = f"not registered ({o['registry_error']})"
        else:
            reg = "not registered (register: false)"
        lines.append(f"  {reg}")
        current = _manifest_adapter(root)
        v = job.verdict  # None for a job recorded before verdicts existed
        if v is not None and v["verdict"] != "fixed":
            lines.append(
                f"  the rollout keeps its adapter: this version did not fix it (try: doctor fix {_shown(root) or '.'})"
            )
        elif current is not None and current.resolve() == new.resolve():
            lines.append("  rollout.toml [[adapters]] already points at it: it is the rollout's adapter")
        else:
            was = f" (now {os.path.relpath(current, root)})" if current is not None else ""
            lines.append(
                f'  rollout.toml [[adapters]] path is unchanged{was}: set it to "{rel}" (version = {o.get("version")})'
                " to make it the rollout's adapter"
            )
    elif job.kind == "reeval" and o.get("eval_table"):
        lines.append(
            f"Next: doctor check {_shown(o.get('out_dir'))}   (re-probes the new eval table with the baseline)"
        )
        lines.append(
            f"  to make {_shown(o['eval_table'])} the rollout's candidate table, copy it into its eval/ folder"
            " and list it under [eval] candidates in rollout.toml"
        )
    if lines and not Path.cwd().resolve().is_relative_to(root.resolve()):
        lines.append(f"  this job again: doctor jobs show {job.id} --rollout {_shown(root)}")
    return lines


def _manifest_adapter(root: Path) -> Path | None:
    try:
        from doctor.core.manifest import read_manifest, resolve

        adapters = read_manifest(root / "rollout.toml").get("adapters") or []
        return resolve(root, adapters[0]["path"]) if adapters else None
    except Exception:
        return None


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


def _event_line(e: dict[str, Any]) -> str:
    t = time.strftime("%H:%M:%S", time.localtime(e.get("ts", 0)))
    kind = e.get("event")
    body = {k: v for k, v in e.items() if k not in ("seq", "ts", "event", "traceback")}
    if "message" in body and len(body) == 1:
        return f"{t} {kind:<9} {body['message']}"
    if kind == "comparison":  # before/after summaries (nested): the headline numbers
        b, a = body.get("before") or {}, body.get("after") or {}
        return f"{t} {kind:<9} findings {b.get('findings')} → {a.get('findings')}; accuracy " + " → ".join(
            "—" if x.get("accuracy") is None else f"{x['accuracy'] * 100:.1f}%" for x in (b, a)
        )
    return f"{t} {kind:<9} " + " ".join(f"{k}={_num(v)}" for k, v in body.items() if not isinstance(v, (dict, list)))


def cmd_logs(args: argparse.Namespace) -> int:
    store = _store(args, args.job_id)
    job = _get(store, args.job_id)
    seq = 0
    while True:
        events = store.events(job.id, after_seq=seq)
        for e in events:
            print(json.dumps(e, default=str) if args.format == "json" else _event_line(e), flush=True)
            seq = max(seq, e["seq"])  # printed in time order; the next poll starts after the newest
        if not args.follow or store.get(job.id).done:
            if args.follow:
                for e in store.events(job.id, after_seq=seq):
                    print(json.dumps(e, default=str) if args.format == "json" else _event_line(e))
            break
        time.sleep(0.5)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from doctor.cli import CliError
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
