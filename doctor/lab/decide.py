"""The lab's numbers and its decision, from the jobs' outputs (pure functions; no jobs, no torch).

- `compare_tables`: every variant's eval table paired with the prompt-only one (probes/eval_slices stats:
  McNemar p, exact paired-bootstrap intervals, Holm across slices).
- `variant_row`: one report row (schema peft-doctor/lab/1, docs/lab.md) from a job's outputs + its comparison.
- `judge`: does a row meet the target (and why not).
- `decide`: the chosen variant, why smaller ranks fail, LoRA vs QLoRA at that rank, whether PEFT is justified.
- `canary_thresholds`: rollback thresholds from the chosen row's intervals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from probes.eval_slices.canary import wilson

BASELINE = "prompt_only"


def compare_tables(tables: dict[str, Path], spec: Any, baseline: str = BASELINE) -> dict[str, dict[str, Any]]:
    """{variant: comparison row vs `baseline`} (probes.eval_slices.compare.compare keys)."""
    from probes.eval_slices.compare import Options, compare, pair
    from probes.eval_slices.readers import read_table

    loaded = [read_table(Path(p), name) for name, p in tables.items()]
    bad = [t for t in loaded if not t.usable]
    if bad:
        raise ValueError(
            f"{bad[0].path}: eval table cannot be analysed: {'; '.join(p.message for p in bad[0].problems)}"
        )
    pairing = pair(loaded)
    if baseline not in pairing.variants:
        raise ValueError(f"no {baseline} rows among the eval tables ({', '.join(sorted(pairing.variants))})")
    opts = Options(
        alpha=spec.alpha,
        resamples=spec.resamples,
        seed=spec.seed,
        safety_slices=tuple(spec.safety_slices),
        min_refusal_drop=float(spec.safety.get("max_refusal_drop", 0.02)),
    )
    return {row["variant"]: row for row in compare(pairing, baseline, opts)}


def _r(x: Any, nd: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


def variant_row(
    name: str,
    method: str,
    rank: int | None,
    job: dict[str, Any] | None,
    comparison: dict[str, Any] | None,
    baseline_eval: dict[str, Any] | None,
    spec: Any,
) -> dict[str, Any]:
    """One report row. The prompt-only row has rank null, no training figures, and zero deltas (itself)."""
    outputs = (job or {}).get("outputs") or {}
    lab = outputs.get("lab") or {}
    serving = lab.get("serving") or {}
    served = serving.get("unmerged") or serving.get("base") or {}
    row: dict[str, Any] = {
        "name": name,
        "method": method,
        "rank": rank,
        "slices": {},
        "overall": None,
        "refusal_rate": None,
        "safety_ok": None,
        "trainable_params": lab.get("trainable_params") if method != "prompt_only" else None,
        "adapter_bytes": lab.get("adapter_bytes") if method != "prompt_only" else None,
        "peak_memory_bytes": lab.get("peak_memory_bytes") if method != "prompt_only" else None,
        "memory_kind": lab.get("memory_kind") if method != "prompt_only" else None,
        "train_tokens_per_s": lab.get("train_tokens_per_s") if method != "prompt_only" else None,
        "latency_ms": {"p50": served.get("p50"), "p95": served.get("p95")},
        "decode_tokens_per_s": served.get("decode_tokens_per_s"),
        "meets_target": False,
        "job": (job or {}).get("id"),
        # beyond the contract's keys (documented in docs/lab.md and docs/lab.schema.json)
        "state": (job or {}).get("state", "not_run"),
        "error": (job or {}).get("error"),
        "overall_delta": None,
        "overall_ci": None,
        "refusal_delta": None,
        "refusal_p": None,
        "refusal_ci": None,
        "refusal_base": None,
        "serving": {k: {m: v.get(m) for m in ("p50", "p95", "decode_tokens_per_s")} for k, v in serving.items()},
        "train_steps": (outputs.get("train") or {}).get("global_step") if method != "prompt_only" else None,
        "adapter_version": outputs.get("version"),
        "failures": [],
    }
    if method == "prompt_only":
        ev = outputs.get("eval") or baseline_eval or {}
        for sl, s in sorted((ev.get("slices") or {}).items()):
            row["slices"][sl] = {"n": s["n"], "accuracy": s["accuracy"], "delta": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                                 "p": None, "status": "baseline"}  # fmt: skip
        if ev:
            row["overall"] = ev.get("accuracy")
            safety = [s for sl, s in (ev.get("slices") or {}).items() if sl in spec.safety_slices]
            if safety:
                n = sum(s["n"] for s in safety)
                row["refusal_rate"] = _r(sum(s["refusal_rate"] * s["n"] for s in safety) / n)
            row["overall_delta"], row["overall_ci"], row["refusal_delta"] = 0.0, [0.0, 0.0], 0.0
            row["safety_ok"] = True
        return row
    if comparison is None:
        return row
    for s in comparison["slices"]:
        row["slices"][s["slice"]] = {
            "n": s["n"],
            "accuracy": s["cand"],
            "delta": s["delta"],
            "ci_low": s["ci_low"],
            "ci_high": s["ci_high"],
            "p": s["p_adj"] if s["p_adj"] is not None else s["p"],
            "status": s["status"],
        }
    o = comparison.get("overall") or {}
    row["overall"] = o.get("cand")
    row["overall_delta"] = o.get("delta")
    row["overall_ci"] = [o.get("ci_low"), o.get("ci_high")]
    sf = comparison.get("safety")
    if sf:
        row["refusal_rate"] = sf["cand"]
        row["refusal_delta"] = sf["delta"]
        row["refusal_p"] = sf["p"]
        row["refusal_ci"] = [sf["ci_low"], sf["ci_high"]]
        row["refusal_base"] = sf["base"]
    return row


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f} pts"


def _pc(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def judge(row: dict[str, Any], spec: Any) -> tuple[bool, list[str]]:
    """(meets the target, the reasons it does not) — the target and safety rule of docs/lab.md."""
    t = spec.target
    fails: list[str] = []
    if row.get("overall") is None:
        return False, [f"no eval results ({row.get('state')}{': ' + row['error'] if row.get('error') else ''})"]
    gain, ceiling = float(t["min_slice_gain"]), float(t["slice_ceiling"])
    wanted = t.get("slices") or [s for s in row["slices"] if s not in spec.safety_slices]
    for sl in wanted:
        s = row["slices"].get(sl)
        if s is None:
            fails.append(f"slice {sl} was not evaluated")
            continue
        if s.get("status") == "regression":
            fails.append(f"{sl} regressed {_pts(s['delta'])} (95% CI {_pts(s['ci_low'])} … {_pts(s['ci_high'])})")
        elif s["delta"] is not None and s["delta"] < gain and s["accuracy"] < ceiling:
            fails.append(
                f"{sl} {_pts(s['delta'])} (95% CI {_pts(s['ci_low'])} … {_pts(s['ci_high'])}) < {_pts(gain)} "
                f"and {_pc(s['accuracy'])} < the {_pc(ceiling)} ceiling"
            )
    if row["overall"] < float(t["min_overall"]):
        fails.append(f"overall {_pc(row['overall'])} < {_pc(t['min_overall'])}")
    ok, why = safety_ok(row, spec)
    row["safety_ok"] = ok
    if not ok:
        fails.append(why)
    return not fails, fails


def safety_ok(row: dict[str, Any], spec: Any) -> tuple[bool, str]:
    """No refusal regression beyond noise (drop >= max_refusal_drop with McNemar p < alpha), above the floor."""
    drop, floor = float(spec.safety.get("max_refusal_drop", 0.02)), spec.safety.get("min_refusal_rate")
    rd, p, rate = row.get("refusal_delta"), row.get("refusal_p"), row.get("refusal_rate")
    if rate is None:
        return (floor is None), "no safety slice was evaluated" if floor is not None else ""
    if rd is not None and p is not None and rd <= -drop and p < spec.alpha:
        return False, f"refusal rate {_pc(rate)} dropped {_pts(rd)} (McNemar p={p:.2g})"
    if floor is not None and rate < float(floor):
        return False, f"refusal rate {_pc(rate)} < the {_pc(floor)} floor"
    return True, ""


def decide(rows: list[dict[str, Any]], spec: Any, qlora_vs_lora: dict[str, Any] | None = None) -> dict[str, Any]:
    """{chosen, why, peft_justified} (+ qlora_vs_lora echoed) from judged rows (`meets_target` set)."""
    lora = sorted((r for r in rows if r["method"] == "lora"), key=lambda r: r["rank"])
    qlora = [r for r in rows if r["method"] == "qlora"]
    meeting = [r for r in lora if r["meets_target"]]
    chosen: dict[str, Any] | None = meeting[0] if meeting else None
    parts: list[str] = []
    target = (
        f"every non-safety slice {_pts(spec.target['min_slice_gain'])} over prompt-only (or ≥ "
        f"{_pc(spec.target['slice_ceiling'])}), overall ≥ {_pc(spec.target['min_overall'])}, no refusal regression"
    )
    if chosen is not None:
        parts.append(f"{chosen['name']} is the smallest rank that meets the target ({target})")
        smaller = [r for r in lora if r["rank"] < chosen["rank"]]
        if smaller:
            parts.append(
                "smaller ranks fail: " + "; ".join(f"{r['name']}: {', '.join(r['failures'])}" for r in smaller)
            )
        q = next((r for r in qlora if r["rank"] == chosen["rank"]), None)
        if q is not None and spec.prefer == "memory" and q["meets_target"]:
            parts.append(f"{q['name']} meets it too and the spec prefers memory: {q['name']} is chosen")
            chosen = q
    else:
        q_meet = [r for r in qlora if r["meets_target"]]
        if q_meet:
            chosen = q_meet[0]
            parts.append(f"no LoRA rank meets the target ({target}); {chosen['name']} does")
        else:
            parts.append(f"no variant meets the target ({target})")
        for r in lora + qlora:
            if r is not chosen and r["failures"]:
                parts.append(f"{r['name']}: {', '.join(r['failures'])}")
    base = next((r for r in rows if r["method"] == "prompt_only"), None)
    if base is not None and base["meets_target"]:
        parts.append("the prompt-only baseline meets the target by itself (no adapter is needed for it)")
    if qlora_vs_lora:
        c = qlora_vs_lora
        mem = c.get("memory_saved_bytes")
        mem_txt = (
            f"saves {mem / 2**20:.1f} MiB of peak memory ({c['memory_kind']})"
            if isinstance(mem, (int, float)) and mem >= 0
            else f"uses {-mem / 2**20:.1f} MiB more peak memory ({c['memory_kind']})"
            if isinstance(mem, (int, float))
            else "memory not measured"
        )
        parts.append(
            f"QLoRA vs LoRA at r={c['rank']}: overall {_pts(c.get('delta'))} (95% CI {_pts(c.get('ci_low'))} … "
            f"{_pts(c.get('ci_high'))}) and {mem_txt}"
        )
    trained = [r for r in rows if r["method"] in ("lora", "qlora") and r.get("overall_ci")]
    beyond = [r for r in trained if r["overall_ci"][0] is not None and r["overall_ci"][0] > 0]
    justified = bool(beyond)
    if not justified:
        best = max(trained, key=lambda r: r["overall_delta"] or -1, default=None)
        best_txt = (
            f" (best: {best['name']} overall {_pts(best['overall_delta'])}, 95% CI {_pts(best['overall_ci'][0])} … "
            f"{_pts(best['overall_ci'][1])})"
            if best
            else ""
        )
        parts.append(
            f"no trained variant beats the prompt-only baseline beyond noise{best_txt}: PEFT is not justified here"
        )
    return {"chosen": chosen["name"] if chosen else None, "why": "; ".join(parts) + ".", "peft_justified": justified}


def canary_thresholds(row: dict[str, Any], baseline: dict[str, Any], spec: Any) -> dict[str, dict[str, float]]:
    """Per-slice rollback thresholds from the chosen row's intervals (docs/lab.md, EVL040/EVL041).

    min_accuracy = min(prompt-only accuracy + lower 95% bound of the paired gain, lower 95% Wilson bound of
    the variant's accuracy); safety slices get min_refusal_rate the same way from the refusal figures.
    Rounded down to 4 places, so a canary that reproduces the lab exactly is inside.
    """
    out: dict[str, dict[str, float]] = {}

    def down(x: float) -> float:
        return math.floor(max(0.0, x) * 10000) / 10000

    for sl, s in sorted(row["slices"].items()):
        n, acc = int(s["n"]), float(s["accuracy"])
        base = (baseline["slices"].get(sl) or {}).get("accuracy")
        cands = [wilson(acc * n, n)[0]]
        if base is not None and s.get("ci_low") is not None:
            cands.append(float(base) + float(s["ci_low"]))
        th = {"min_accuracy": down(min(cands))}
        if sl in spec.safety_slices and row.get("refusal_rate") is not None:
            rate = float(row["refusal_rate"])
            rc = [wilson(rate * n, n)[0]]
            if row.get("refusal_base") is not None and row.get("refusal_ci"):
                rc.append(float(row["refusal_base"]) + float(row["refusal_ci"][0]))
            th["min_refusal_rate"] = down(min(rc))
        out[sl] = th
    return out
