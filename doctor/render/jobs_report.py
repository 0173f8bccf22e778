"""What `doctor jobs` and the TUI show of a job: its card (`doctor jobs show`), the before/after comparison,
per-slice statistics, the next steps, and one line per worker event (`doctor jobs logs`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def num(v: Any) -> str:
    """A number for people: floats to 4 significant digits (0.1591, 0.0002, 1e-05); the rest as str()."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {num(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(num(x) for x in v) + "]"
    return str(v)


def pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={num(v)}" for k, v in d.items())


def shown(path: str | Path | None) -> str:
    """A path relative to the working folder when under it, else as given."""
    from doctor.core.model import display_path

    return display_path(Path(path)) if path else ""


def duration(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "—"


def render_job(job, store) -> str:

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
            from doctor.playbook.recipe import describe_overrides

            lines.append("  overrides: " + describe_overrides(spec["overrides"], spec.get("recipe")))
        d = spec.get("data", {})
        slices = ", ".join(map(str, d.get("train_slices") or [])) or "not listed"
        lines.append(f"  data:      {d.get('train')} (slices: {slices})")
    else:
        lines.append(f"  eval:      {spec.get('eval_set')}  adapter: {spec.get('adapter') or '(base only)'}")
    lines.append(f"  progress:  step {job.step}/{job.max_steps}   ETA {duration(job.eta_s)}")
    dur = (job.ended or time.time()) - job.started if job.started else None
    lines.append(
        f"  created {when(job.created)}  started {when(job.started)}  ended {when(job.ended)}  ({duration(dur)})"
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
        lines.append(f"Next: doctor check {shown(new)}   (the new adapter, version {o.get('version')})")
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
                f"  the rollout keeps its adapter: this version did not fix it (try: doctor fix {shown(root) or '.'})"
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
        lines.append(f"Next: doctor check {shown(o.get('out_dir'))}   (re-probes the new eval table with the baseline)")
        lines.append(
            f"  to make {shown(o['eval_table'])} the rollout's candidate table, copy it into its eval/ folder"
            " and list it under [eval] candidates in rollout.toml"
        )
    if lines and not Path.cwd().resolve().is_relative_to(root.resolve()):
        lines.append(f"  this job again: doctor jobs show {job.id} --rollout {shown(root)}")
    return lines


def _manifest_adapter(root: Path) -> Path | None:
    try:
        from doctor.core.manifest import read_manifest, resolve

        adapters = read_manifest(root / "rollout.toml").get("adapters") or []
        return resolve(root, adapters[0]["path"]) if adapters else None
    except Exception:
        return None


def event_line(e: dict[str, Any]) -> str:
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
    return f"{t} {kind:<9} " + " ".join(f"{k}={num(v)}" for k, v in body.items() if not isinstance(v, (dict, list)))


def render_comparison(c: dict[str, Any]) -> list[str]:
    if "parity" in c:  # a parity job measures, it compares no before/after
        from doctor.jobs.parity import render_parity

        return render_parity(c["parity"])
    lines = [
        f"Before → after ({', '.join(c.get('families') or [])} rules): "
        f"{c['before']['findings']} → {c['after']['findings']} findings; "
        f"accuracy {_pc(c['before']['accuracy'])} → {_pc(c['after']['accuracy'])}"
    ]
    for title, key in (("Resolved", "resolved"), ("New", "new"), ("Still present", "persisting")):
        if c.get(key):
            lines.append(f"  {title}:")
            lines.extend(f"    {f['rule']} {f['severity']:<7} {f['title']}" for f in c[key])
    if c.get("slices"):
        lines.append(f"  {'slice':<12} {'base':>7} {'before':>7} {'after':>7} {'delta':>7}")
        for s in c["slices"]:
            cells = [_pc(s["base"]), _pc(s["before"]), _pc(s["after"]), _signed(s["delta"])]
            lines.append(f"  {s['slice']:<12} " + " ".join(f"{c:>7}" for c in cells))
    tr = c.get("training")
    if tr:
        bad = tr.get("first_non_finite_step")
        lines.append(
            f"  training: final loss {_g(tr.get('final_loss'))}, "
            + (f"first non-finite step {_g(bad)}" if bad is not None else "every logged step finite")
        )
    return lines


def _g(v: Any) -> str:
    """4 significant digits for floats (0.1591); ints, None and strings (non-finite values) as they are."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pc(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:+.1f}pp"
