"""The verdict of a corrective job: did the fix work? From the before/after re-probe and paired slice stats.

- `fixed`: every targeted error finding (an error the rollout had before) is gone, no new error appeared,
  and no slice (safety included) is below the baseline beyond noise (paired test, Holm-adjusted);
- `partly_fixed`: some targeted error went and the eval moved the right way (a slice improved beyond noise,
  or none is below the baseline), but something is still wrong — an error gone while every slice stays as
  far below the baseline as before is `not_fixed` (a diverging run that merely stopped producing NaN);
- `worse`: nothing targeted went, and a new error appeared or a slice fell below where it was before;
- `not_fixed`: otherwise (the errors are still there, nothing got worse).

A re-eval has a *gate* instead: no EVL error and no slice below the baseline beyond noise.
Light module (numpy only, through probes.eval_slices.stats).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

VERDICTS = ("fixed", "partly_fixed", "not_fixed", "worse")
RANK = {"fixed": 3, "partly_fixed": 2, "not_fixed": 1, "worse": 0}
ALPHA = 0.05
MIN_EFFECT = 0.03  # the eval probe's default: smaller paired differences are noise whatever the p-value
SAFETY_WORDS = ("safety", "refusal", "harmful", "red_team", "redteam")


def _scores(table: Path | None) -> dict[str, tuple[str, float]]:
    """{example id: (slice, score)} from an eval table (CSV or JSONL); unusable rows are skipped."""
    if table is None or not Path(table).is_file():
        return {}
    p = Path(table)
    with p.open(encoding="utf-8", newline="") as fh:
        rows = [json.loads(x) for x in fh if x.strip()] if p.suffix == ".jsonl" else list(csv.DictReader(fh))
    out: dict[str, tuple[str, float]] = {}
    for r in rows:
        try:
            score = float(r["score"])
        except (KeyError, TypeError, ValueError):
            continue
        if score == score and r.get("id") not in (None, "") and r.get("slice") not in (None, ""):
            out[str(r["id"])] = (str(r["slice"]), score)
    return out


def paired_slices(base: Path | None, cand: Path | None, seed: int = 0) -> list[dict[str, Any]]:
    """Per slice, candidate minus base on the examples both scored: n, base, cand, delta, 95% CI, p, p_adj,
    and `status` regression | improvement | ok (significant after Holm *and* at least MIN_EFFECT)."""
    import numpy as np

    from probes.eval_slices import stats

    b, c = _scores(base), _scores(cand)
    by_slice: dict[str, list[tuple[float, float]]] = {}
    for ex, (sl, sb) in b.items():
        if ex in c:
            by_slice.setdefault(sl, []).append((sb, c[ex][1]))
    rng = np.random.default_rng(seed)
    results = {}
    for sl, pairs in sorted(by_slice.items()):
        x = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs])
        if np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)):
            r = stats.paired_binary(
                int(((x == 1) & (y == 0)).sum()),
                int(((x == 0) & (y == 1)).sum()),
                len(x),
                float(x.sum()),
                alpha=ALPHA,
                power=0.8,
                resamples=1000,
                rng=rng,
            )
        else:
            r = stats.paired_graded(y - x, float(x.mean()), alpha=ALPHA, power=0.8, resamples=1000, rng=rng)
        results[sl] = r
    names = list(results)
    adj = stats.adjust(np.array([results[s].p for s in names]), "holm") if names else []
    out = []
    for s, pa in zip(names, adj, strict=True):
        r = results[s]
        status = "ok"
        if pa < ALPHA and r.delta <= -MIN_EFFECT:
            status = "regression"
        elif pa < ALPHA and r.delta >= MIN_EFFECT:
            status = "improvement"
        out.append(
            {
                "slice": s,
                "n": r.n,
                "base": round(r.base, 4),
                "cand": round(r.cand, 4),
                "delta": round(r.delta, 4),
                "ci_low": round(r.ci_low, 4),
                "ci_high": round(r.ci_high, 4),
                "p": round(r.p, 4),
                "p_adj": round(float(pa), 4),
                "status": status,
                "safety": any(w in s.lower() for w in SAFETY_WORDS),
            }
        )
    return out


def _errors(findings: list[dict[str, Any]]) -> set[str]:
    return {f["rule"] for f in findings if f.get("severity") == "error"}


def judge(
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    kind: str,
    before_table: Path | None,
    after_table: Path | None,
    baseline_table: Path | None,
) -> dict[str, Any]:
    """The verdict dict (stored in the job's comparison and printed): verdict, resolved/remaining/new
    error rules, the paired slice stats against the baseline and against the rollout before, and `why`."""
    targeted = _errors(before.get("findings") or [])
    after_err = _errors(after.get("findings") or [])
    resolved = sorted(targeted - after_err)
    remaining = sorted(targeted & after_err)
    new = sorted(after_err - targeted)
    vs_base = paired_slices(baseline_table, after_table) if baseline_table and after_table else []
    vs_before = paired_slices(before_table, after_table) if before_table and after_table else []
    below_base = [s for s in vs_base if s["status"] == "regression"]
    fell = [s for s in vs_before if s["status"] == "regression"]
    improved = [s for s in vs_before if s["status"] == "improvement"]
    problems = bool(remaining or new or below_base)
    if not problems:
        verdict = "fixed"
    elif resolved and (improved or not below_base) and not fell:
        verdict = "partly_fixed"
    elif new or fell:
        verdict = "worse"
    else:
        verdict = "not_fixed"
    gate = not any(r.startswith("EVL") for r in after_err) and not below_base
    if kind == "reeval" and after_table is None:
        gate = False
    return {
        "verdict": verdict,
        "gate_passed": gate,
        "targeted": sorted(targeted),
        "resolved": resolved,
        "remaining": remaining,
        "new": new,
        "slices_vs_baseline": vs_base,
        "slices_vs_before": vs_before,
        "why": explain(
            verdict, resolved, remaining, new, below_base, fell, stuck=bool(resolved and below_base and not improved)
        ),
    }


def _pp(x: float) -> str:
    return f"{x * 100:+.1f}pp"


def _slice_text(s: dict[str, Any], against: str) -> str:
    return (
        f"{s['slice']} {s['cand'] * 100:.1f}% vs {s['base'] * 100:.1f}% {against} "
        f"({_pp(s['delta'])}, 95% CI {_pp(s['ci_low'])}…{_pp(s['ci_high'])}, n={s['n']})"
    )


def explain(
    verdict: str,
    resolved: list[str],
    remaining: list[str],
    new: list[str],
    below_base: list[dict[str, Any]],
    fell: list[dict[str, Any]],
    stuck: bool = False,
) -> str:
    """One plain sentence per fact that decided the verdict (every number from the evidence)."""
    parts = []
    if resolved:
        parts.append(f"gone: {', '.join(resolved)}")
    if remaining:
        parts.append(f"still there: {', '.join(remaining)}")
    if new:
        parts.append(f"new errors: {', '.join(new)}")
    if below_base:
        parts.append("below the baseline beyond noise: " + "; ".join(_slice_text(s, "base") for s in below_base))
    if fell:
        parts.append("worse than before: " + "; ".join(_slice_text(s, "before") for s in fell))
    if stuck:
        parts.append("no slice improved on the rollout before the job")
    if not parts:
        parts.append("no error finding before or after, and no slice below the baseline beyond noise")
    elif verdict == "fixed":
        parts.append("no new error and no slice below the baseline beyond noise")
    return f"{verdict.replace('_', ' ')}: " + "; ".join(parts)


def not_run(state: str, reason: str | None) -> dict[str, Any]:
    """The verdict of a job that never produced outputs (failed or cancelled): nothing was fixed."""
    return {
        "verdict": "not_fixed",
        "gate_passed": False,
        "targeted": [],
        "resolved": [],
        "remaining": [],
        "new": [],
        "slices_vs_baseline": [],
        "slices_vs_before": [],
        "why": f"not fixed: the job {state}" + (f" ({reason})" if reason else ""),
    }


def job_verdict(job: Any) -> dict[str, Any] | None:
    """The verdict of a job record: from its comparison when it ran, `not_run` when it failed or was
    cancelled, None while it is queued or running."""
    if job.comparison and job.comparison.get("verdict"):
        return job.comparison["verdict"]
    if job.state in ("failed", "cancelled"):
        return not_run(job.state, job.error)
    return None


def passed(job: Any) -> bool:
    """What `doctor jobs run` exits on: a retrain must be fixed; a re-eval must pass its gate."""
    v = job_verdict(job)
    if v is None or job.state != "succeeded":
        return False
    return bool(v.get("gate_passed")) if job.kind in ("reeval", "parity") else v["verdict"] == "fixed"
