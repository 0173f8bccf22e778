"""`doctor triage` outputs: JSON (peft-doctor/triage/1), console and Markdown, with what the job floor knows
about each job action (can it run here; which fixes were already tried on this rollout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doctor.core.model import display_path
from doctor.jobs.readiness import job_readiness
from doctor.playbook.recipe import describe
from doctor.playbook.triage import RolloutTriage

TRIAGE_SCHEMA = "peft-doctor/triage/1"


def triage_dict(rt: RolloutTriage) -> dict[str, Any]:
    t = rt.triage
    return {
        "schema": TRIAGE_SCHEMA,
        "rollout": display_path(rt.root),
        "path": [
            {
                "playbook": s.playbook,
                "node": s.node,
                "question": s.question,
                "answer": s.answer,
                "evidence": s.evidence,
                "how": s.how,
            }
            for s in t.path
        ],
        "diagnosis": {
            "leaf": t.leaf,
            "leaves": t.leaves,
            "text": t.diagnosis,
            "causes": [{"cause": c.cause, "score": c.score, "evidence": c.evidence, "text": c.text} for c in t.causes],
            "actions": [_action(a, rt.root) for a in t.actions],
        },
        "jobs": job_verdicts(rt.root),
    }


def job_verdicts(root: Path, limit: int = 3) -> list[dict[str, Any]]:
    """The newest judged jobs of this rollout (doctor jobs / doctor fix) with their verdicts: triage says
    whether the fixes tried so far worked."""
    from doctor.jobs.store import JobStore

    store = JobStore(root)
    if not store.exists:
        return []
    out = []
    try:
        jobs = store.list_jobs()
    except Exception:  # a damaged job store must not break triage
        return []
    for j in jobs:
        v = j.verdict
        if v is None:
            continue
        out.append(
            {
                "job": j.id,
                "kind": j.kind,
                "version": j.outputs.get("version"),
                "verdict": v["verdict"],
                "why": v.get("why", ""),
                "fix_attempt": ((j.spec or {}).get("source") or {}).get("fix_attempt"),
            }
        )
        if len(out) >= limit:
            break
    return out


def _action(action: dict[str, Any], root: Path) -> dict[str, Any]:
    out = {"kind": action["kind"], "text": action["text"]}
    if action["kind"] == "job":
        job = dict(action.get("job") or {})
        job.setdefault("overrides", {})
        job["rollout"] = display_path(root)
        ready = job_readiness(root, action.get("job"))
        job["runnable"] = ready.ok
        if not ready.ok:
            job["missing"], job["init"] = ready.missing, ready.hint
        out["job"] = job
    else:
        out["job"] = {}
    return out


def render_json(results: list[RolloutTriage]) -> str:
    if len(results) == 1:
        payload: Any = triage_dict(results[0])
    else:
        payload = {"schema": "peft-doctor/triage-set/1", "triages": [triage_dict(r) for r in results]}
    return json.dumps(payload, indent=2) + "\n"


def _how(step) -> str:
    if step.how == "evidence":
        return f"  (evidence: {', '.join(step.evidence)})" if step.evidence else ""
    if step.how == "pending":
        return "  (a question for you: headless runs take the unknown branch; answer with --answer)"
    return f"  ({step.how})"


def render_console(results: list[RolloutTriage]) -> str:
    lines: list[str] = []
    for rt in results:
        t = rt.triage
        lines.append(f"Triage of {display_path(rt.root)}")
        lines.append("")
        lines.append("Path taken:" if t.path else "Path taken: none (no evidence to walk)")
        for s in t.path:
            if s.how == "playbook":
                lines.append(f"  ▸ {s.question}")
                continue
            lines.append(f"  {s.playbook}.{s.node}: {s.question}")
            lines.append(f"      → {s.answer}{_how(s)}")
        lines.append("")
        lines.append("Diagnosis:")
        lines.extend(f"  {ln}" for ln in t.diagnosis.splitlines())
        if t.causes:
            lines.append("")
            lines.append("Likely causes (ranked):")
            for i, c in enumerate(t.causes, 1):
                ev = f"  [evidence: {', '.join(c.evidence)}]" if c.evidence else ""
                lines.append(f"  {i}. {c.cause} ({c.score:.2f}) — {c.text}{ev}")
        if t.actions:
            lines.append("")
            lines.append("Actions:")
            for a in t.actions:
                lines.append(f"  - [{a['kind']}] {a['text']}")
                if a["kind"] == "job":
                    job = a.get("job") or {}
                    over = ", ".join(f"{k}={describe(v)}" for k, v in (job.get("overrides") or {}).items())
                    ready = job_readiness(rt.root, job)
                    if not ready.ok:  # suggest only what can run: else the init line naming what is missing
                        lines.append(f"      cannot run here yet (missing: {', '.join(ready.missing)})")
                        lines.append(f"      {ready.hint}")
                        continue
                    # The user's answers led here: the job command must repeat them to reach the same leaf.
                    answers = "".join(f" --answer {s.node}={s.answer}" for s in t.path if s.how == "user")
                    lines.append(
                        f"      doctor jobs run --from-triage {display_path(rt.root)}{answers}"
                        f"   # {job.get('kind')} {over}".rstrip()
                    )
                    lines.append(f"      doctor fix {display_path(rt.root)}{answers}   # until fixed (3 attempts)")
        tried = job_verdicts(rt.root)
        if tried:
            lines.append("")
            lines.append("Fixes tried on this rollout (newest first):")
            for jv in tried:
                version = f" v{jv['version']}" if jv["version"] else ""
                lines.append(f"  - job {jv['job']} ({jv['kind']}{version}): {jv['why']}")
        lines.append("")
    return "\n".join(lines)


def render_markdown(results: list[RolloutTriage]) -> str:
    lines: list[str] = []
    for rt in results:
        t = rt.triage
        lines.append(f"# Triage: `{display_path(rt.root)}`\n")
        lines.append("| playbook | node | question | answer | evidence |")
        lines.append("|---|---|---|---|---|")
        for s in t.path:
            if s.how == "playbook":
                continue
            evidence = ", ".join(s.evidence) if s.evidence else ("no findings" if s.how == "evidence" else s.how)
            lines.append(f"| {s.playbook} | {s.node} | {s.question} | **{s.answer}** | {evidence} |")
        lines.append(f"\n## Diagnosis\n\n{t.diagnosis}\n")
        if t.causes:
            lines.append("| rank | cause | score | evidence |")
            lines.append("|---|---|---|---|")
            for i, c in enumerate(t.causes, 1):
                lines.append(f"| {i} | `{c.cause}` | {c.score:.2f} | {', '.join(c.evidence) or '—'} |")
        if t.actions:
            lines.append("\n## Actions\n")
            for a in t.actions:
                lines.append(f"- **{a['kind']}**: {a['text']}")
        lines.append("")
    return "\n".join(lines)
