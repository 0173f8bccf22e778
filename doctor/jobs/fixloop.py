"""`doctor fix`: triage → job → re-probe → verdict, repeated until `fixed` or the budget ends.

Each attempt is a new adapter version and one line in `<rollout>/.doctor/fix-log.jsonl` (what changed,
why, the verdict). Attempt k+1 triages the *outputs of attempt k* (its job folder is a rollout) and builds
its job from that attempt's recipe, so the next action follows the new evidence (a learning rate still too
high is lowered again, inside the method's range). Every verdict is against the original rollout.
Light module: the training runs in the job worker subprocess.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doctor.jobs import DEFAULT_ATTEMPTS, DEFAULT_BUDGET_MIN, api
from doctor.jobs.spec import SpecError, spec_from_action
from doctor.jobs.store import job_dir
from doctor.jobs.verdict import RANK

SCHEMA = "peft-doctor/fix/1"
FIX_LOG = "fix-log.jsonl"

Notify = Callable[[dict[str, Any]], None]


# Jobs that change or re-judge the adapter. A parity job only measures (base vs adapter vs merged export): it
# is offered beside a fix, never taken as one.
FIX_KINDS = ("retrain", "reeval")


def _first_job_action(results: list[Any]) -> tuple[dict[str, Any] | None, Any]:
    for rt in results:
        for a in rt.triage.actions:
            if a.get("kind") == "job" and (a.get("job") or {}).get("kind", "retrain") in FIX_KINDS:
                return a, rt
    return None, results[0] if results else None


def _nothing_to_run(root: Path, rt: Any, t0: float) -> dict[str, Any]:
    """The first triage offers no corrective job: `fixed` when no error finding stands (nothing is broken),
    else `not_fixed` with what is wrong and the advice triage gave instead."""
    from doctor.core.model import display_path

    errors = sorted({f.rule for f in (rt.evidence.findings if rt else []) if f.severity.value == "error"})
    leaf = rt.triage.leaf if rt else "?"
    advice = [a.get("text", "") for a in (rt.triage.actions if rt else []) if a.get("kind") != "job"]
    if errors:
        still = f"errors {', '.join(errors)} remain and triage ({leaf}) offers no corrective job" + (
            f"; its advice: {' '.join(t for t in advice if t)}" if any(advice) else ""
        )
    else:
        still = ""
    return {
        "schema": SCHEMA,
        "rollout": display_path(root),
        "attempts": [],
        "verdict": "not_fixed" if errors else "fixed",
        "best_version": None,
        "best_attempt": None,
        "stopped": f"triage ended at {leaf} with no corrective job"
        + ("" if errors else ": no error finding, nothing to fix"),
        "still_wrong": still,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "fix_log": display_path(root / ".doctor" / FIX_LOG),
    }


def _fingerprint(spec: dict[str, Any]) -> str:
    return json.dumps({k: spec.get(k) for k in ("kind", "method", "recipe", "data")}, sort_keys=True, default=str)


def _next_spec(root: Path, settings: Any, answers: dict[str, str] | None, prev: dict[str, Any] | None):
    """(spec, triage of the evidence it came from, action) — or (None, triage, None) when triage offers no job."""
    from doctor.playbook.triage import run_triage

    evidence = Path(prev["out_dir"]) if prev else root
    results = run_triage([evidence], settings, answers or None)
    action, rt = _first_job_action(results)
    if action is None:
        return None, rt, None
    base = prev["spec"]["recipe"] if prev else None
    spec = spec_from_action(root, action["job"], base_recipe=base)
    if prev and not set(action["job"].get("overrides") or {}) & {"train_slices", "mix", "train"}:
        spec["data"] = prev["spec"]["data"]  # keep what an earlier attempt changed in the data
    leaf = next((x for x in rt.triage.leaves if not x.startswith("triage.")), rt.triage.leaf)
    spec["source"] = {
        **spec.get("source", {}),
        "triage": leaf,
        "text": action.get("text", ""),
        "evidence_from": str(evidence),
        "causes": [c.cause for c in rt.triage.causes[:3]],
    }
    return spec, rt, action


def _why(spec: dict[str, Any], rt: Any) -> str:
    src = spec.get("source") or {}
    causes = ", ".join(src.get("causes") or []) or "no ranked cause"
    lr = (src.get("learning_rate") or {}).get("why")
    return f"{src.get('triage')} ({causes}): {src.get('text', '')}" + (f" [{lr}]" if lr else "")


def _append_log(root: Path, line: dict[str, Any]) -> Path:
    path = root / ".doctor" / FIX_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")
    return path


def run_fix(
    rollout: Path | str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    budget_min: float = DEFAULT_BUDGET_MIN,
    settings: Any = None,
    answers: dict[str, str] | None = None,
    on_event: Notify | None = None,
    on_attempt: Notify | None = None,
) -> dict[str, Any]:
    """Run the loop; returns the `peft-doctor/fix/1` report (no attempts when triage offers no corrective job).
    SpecError when triage offers one but no job can be built from it."""
    from doctor.core.model import display_path
    from doctor.core.settings import Settings

    root = Path(rollout).resolve()
    settings = settings or Settings()
    t0 = time.monotonic()
    budget_s = budget_min * 60
    done: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    seen: set[str] = set()
    stopped = "attempts"
    notify = on_attempt or (lambda _e: None)
    for k in range(1, attempts + 1):
        spent = time.monotonic() - t0
        last_wall = done[-1]["wall_s"] if done else 0.0
        if spent >= budget_s or (done and spent + last_wall > budget_s):
            stopped = f"budget: {spent / 60:.1f} of {budget_min:g} min spent" + (
                f", the next attempt would take about {last_wall / 60:.1f} min" if done else ""
            )
            break
        try:
            spec, rt, _action = _next_spec(root, settings, answers, prev)
        except SpecError as exc:
            if not done:
                raise
            stopped = f"no further job could be built from attempt {k - 1}'s evidence: {exc}"
            break
        if spec is None:
            leaf = rt.triage.leaf if rt else "?"
            stopped = f"triage of attempt {k - 1}'s outputs ended at {leaf} with no job action"
            if not done:
                return _nothing_to_run(root, rt, t0)
            break
        fp = _fingerprint(spec)
        if fp in seen:
            stopped = (
                f"the next action ({spec['source'].get('triage')}) would repeat an earlier attempt: "
                "nothing left to change inside the usual ranges"
            )
            break
        seen.add(fp)
        spec["source"]["fix_attempt"] = k  # the jobs screen and `jobs show` say which attempt it was
        why = _why(spec, rt)
        notify({"event": "attempt", "attempt": k, "why": why, "changes": spec["source"].get("changes", {})})
        remaining_s = max(budget_s - (time.monotonic() - t0), 1.0)
        holder: dict[str, Any] = {}

        def stop(holder: dict[str, Any] = holder) -> None:  # out of budget: the running job is cancelled
            if holder.get("id"):
                holder["out_of_budget"] = True
                api.cancel(holder["id"], root)

        timer = threading.Timer(remaining_s, stop)
        timer.daemon = True
        timer.start()
        ta = time.monotonic()
        try:
            job = api.run(spec, root, on_event=on_event, on_created=lambda j, h=holder: h.__setitem__("id", j.id))
        finally:
            timer.cancel()
        wall = round(time.monotonic() - ta, 1)
        v = job.verdict or {"verdict": "not_fixed", "resolved": [], "remaining": [], "new": [], "why": ""}
        entry = {
            "attempt": k,
            "job": job.id,
            "version": job.outputs.get("version"),
            "changes": spec["source"].get("changes", {}),
            "why": why,
            "verdict": v["verdict"],
            "verdict_why": v.get("why", ""),
            "resolved": v.get("resolved", []),
            "remaining": v.get("remaining", []),
            "new": v.get("new", []),
            "registry_status": ((job.outputs.get("registry") or {}).get("entry") or {}).get("status"),
            "state": job.state,
            "wall_s": wall,
        }
        done.append(entry)
        _append_log(root, {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry})
        notify({"event": "verdict", **entry})
        if v["verdict"] == "fixed":
            stopped = "fixed"
            break
        if job.state != "succeeded":
            stopped = f"attempt {k} {job.state}: {job.error or ''}".strip()
            if holder.get("out_of_budget"):
                stopped = f"budget of {budget_min:g} min reached: attempt {k} was cancelled ({job.error or 'stopped'})"
            break
        prev = {"spec": job.spec, "out_dir": str(job_dir(root, job.id) / "out")}
    best = max(done, key=lambda a: (RANK[a["verdict"]], -len(a["remaining"]) - len(a["new"]), a["attempt"]))
    return {
        "schema": SCHEMA,
        "rollout": display_path(root),
        "attempts": done,
        "verdict": best["verdict"],
        "best_version": best["version"],
        "best_attempt": best["attempt"],
        "stopped": stopped,
        "still_wrong": still_wrong(best),
        "elapsed_s": round(time.monotonic() - t0, 1),
        "fix_log": display_path(root / ".doctor" / FIX_LOG),
    }


def still_wrong(best: dict[str, Any]) -> str:
    """A plain statement of what the best attempt left wrong (empty when it fixed the rollout)."""
    if best["verdict"] == "fixed":
        return ""
    return best.get("verdict_why") or f"attempt {best['attempt']} ended {best['state']}"
