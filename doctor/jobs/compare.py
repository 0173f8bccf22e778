"""Closing the loop: re-probe a job's outputs with doctor.engine.check and compare before/after.

Runs in the parent (light) process — never in the worker. The "after" view is the job's output folder
made into a rollout (a `rollout.toml` written next to train/, adapter/, eval/), so the same probes see
the new training log, adapter and eval table, with the rollout's baseline table beside them.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

# Rule families a job's outputs can change (serving and registry files are not re-made by a job).
FAMILIES = {"retrain": ("TRN", "CFG", "ADP", "EVL"), "reeval": ("EVL",), "parity": ("SRV",)}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else f'"{v}"'
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if v is None:
        return '""'
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for manifests: top tables, arrays of tables, one level of sub-tables."""
    lines: list[str] = []

    def table(prefix: str, tbl: dict[str, Any]) -> None:
        subs = {k: v for k, v in tbl.items() if isinstance(v, dict)}
        for k, v in tbl.items():
            if k not in subs and v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
        for k, v in subs.items():
            lines.append("")
            lines.append(f"[{prefix}.{k}]")
            for kk, vv in v.items():
                if vv is not None:
                    lines.append(f"{json.dumps(str(kk)) if not str(kk).isidentifier() else kk} = {_toml_value(vv)}")

    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for item in value:
                lines.append(f"[[{key}]]")
                for k, v in item.items():
                    lines.append(f"{k} = {_toml_value(v)}")
                lines.append("")
        elif isinstance(value, dict):
            lines.append(f"[{key}]")
            table(key, value)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_after_manifest(spec: dict[str, Any], out: Path, job_id: str) -> Path:
    """Make the job's output folder a rollout: rollout.toml + eval/baseline.csv copied from the rollout."""
    from doctor.core.manifest import read_manifest, resolve

    root = Path(spec["rollout"])
    try:
        m = read_manifest(root / "rollout.toml")
    except Exception:
        m = {"rollout": {}}
    ro = m.get("rollout", {})
    ev = m.get("eval", {})
    eval_dir = out / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    baseline = resolve(root, ev.get("baseline"))
    has_baseline = baseline is not None and baseline.is_file() and not (eval_dir / "baseline.csv").exists()
    if has_baseline:
        shutil.copyfile(baseline, eval_dir / "baseline.csv")
    candidates = sorted(p.name for p in eval_dir.glob("*.csv") if p.name != "baseline.csv")
    data: dict[str, Any] = {
        "rollout": {
            "name": f"{ro.get('name', root.name)}-job-{job_id}",
            "method": spec.get("method") or ro.get("method", "lora"),
            "base_model": spec["base_model"],
            **({"base_model_name": spec["base_model_name"]} if spec.get("base_model_name") else {}),
        },
    }
    if spec["kind"] == "retrain":
        data["adapters"] = [{"name": spec.get("adapter_name", "adapter"), "version": 0, "path": "adapter"}]
        d = spec["data"]
        data["data"] = {
            "train": d["train"],
            **({"train_slices": d["train_slices"]} if d.get("train_slices") not in (None, "all") else {}),
            **({"mix": d["mix"]} if d.get("mix") else {}),
        }
        if d.get("train_slices") in (None, "all"):
            slices = _slices_of(Path(d["train"]))
            if slices:
                data["data"]["train_slices"] = slices
    eval_tbl: dict[str, Any] = {}
    eval_set = (spec.get("eval") or {}).get("eval_set") or spec.get("eval_set")
    if eval_set:
        eval_tbl["eval_set"] = eval_set
    if (eval_dir / "baseline.csv").exists():
        eval_tbl["baseline"] = "eval/baseline.csv"
    if candidates:
        eval_tbl["candidates"] = [f"eval/{c}" for c in candidates]
    eval_tbl["baseline_variant"] = ev.get("baseline_variant", "base")
    data["eval"] = eval_tbl
    if spec["kind"] == "retrain":
        data["training"] = {"log_dir": "train"}
        data["recipe"] = spec["recipe"]
    path = out / "rollout.toml"
    header = f"# The outputs of doctor job {job_id}, as a rollout (written by doctor.jobs for re-probing).\n"
    path.write_text(header + dumps_toml(data), encoding="utf-8")
    return path


def _slices_of(train: Path) -> list[str]:
    seen: dict[str, None] = {}
    try:
        with train.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    seen.setdefault(json.loads(line).get("slice", ""))
    except (OSError, ValueError):
        return []
    return sorted(s for s in seen if s)


def findings_snapshot(targets: list[Path], families: tuple[str, ...]) -> dict[str, Any]:
    """check(targets) → the findings of the given rule families, as JSON-ready dicts."""
    from doctor.core.settings import Settings
    from doctor.engine import check

    report = check(targets, Settings())
    out = []
    for f in report.findings:
        if not f.rule.startswith(families):
            continue
        out.append(
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "title": f.title,
                "message": f.message,
                "path": str(f.path) if f.path else None,
                "locator": f.locator,
                "symptoms": list(f.symptoms),
            }
        )
    return {"findings": out, "families": list(families)}


def slice_accuracy(table: Path | None) -> dict[str, dict[str, float]]:
    """{slice: {"accuracy", "n", "refusal_rate"}} from an eval table (CSV or JSONL)."""
    if table is None or not Path(table).is_file():
        return {}
    rows: list[dict[str, Any]] = []
    p = Path(table)
    if p.suffix == ".jsonl":
        with p.open(encoding="utf-8") as fh:
            rows = [json.loads(x) for x in fh if x.strip()]
    else:
        with p.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        try:
            groups[str(r["slice"])].append((float(r["score"]), float(r.get("refused") or 0)))
        except (KeyError, ValueError, TypeError):
            continue
    return {
        s: {
            "accuracy": round(sum(a for a, _ in v) / len(v), 4),
            "refusal_rate": round(sum(b for _, b in v) / len(v), 4),
            "n": len(v),
        }
        for s, v in sorted(groups.items())
    }


def _key(f: dict[str, Any]) -> str:
    return f["rule"]


def compare(
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    before_table: Path | None,
    after_table: Path | None,
    baseline_table: Path | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Findings resolved / new / persisting (by rule id) and per-slice accuracy deltas."""
    b_rules: dict[str, list[dict[str, Any]]] = defaultdict(list)
    a_rules: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in before["findings"]:
        b_rules[_key(f)].append(f)
    for f in after["findings"]:
        a_rules[_key(f)].append(f)

    def brief(fs: list[dict[str, Any]]) -> dict[str, Any]:
        f = fs[0]
        return {
            "rule": f["rule"],
            "severity": f["severity"],
            "title": f["title"],
            "message": f["message"],
            "count": len(fs),
        }

    resolved = [brief(b_rules[r]) for r in sorted(set(b_rules) - set(a_rules))]
    new = [brief(a_rules[r]) for r in sorted(set(a_rules) - set(b_rules))]
    persisting = [brief(a_rules[r]) for r in sorted(set(a_rules) & set(b_rules))]
    sb, sa, base = slice_accuracy(before_table), slice_accuracy(after_table), slice_accuracy(baseline_table)
    slices = []
    for s in sorted(set(sb) | set(sa)):
        row: dict[str, Any] = {"slice": s}
        row["base"] = base.get(s, {}).get("accuracy")
        row["before"] = sb.get(s, {}).get("accuracy")
        row["after"] = sa.get(s, {}).get("accuracy")
        row["delta"] = round(row["after"] - row["before"], 4) if None not in (row["after"], row["before"]) else None
        row["after_vs_base"] = round(row["after"] - row["base"], 4) if None not in (row["after"], row["base"]) else None
        slices.append(row)

    def overall(t: dict[str, dict[str, float]]) -> float | None:
        n = sum(v["n"] for v in t.values())
        return round(sum(v["accuracy"] * v["n"] for v in t.values()) / n, 4) if n else None

    return {
        "schema": "peft-doctor/job-comparison/1",
        "families": before.get("families"),
        "before": {"findings": len(before["findings"]), "rules": sorted(b_rules), "accuracy": overall(sb)},
        "after": {"findings": len(after["findings"]), "rules": sorted(a_rules), "accuracy": overall(sa)},
        "resolved": resolved,
        "new": new,
        "persisting": persisting,
        "slices": slices,
        "tables": {
            "before": str(before_table) if before_table else None,
            "after": str(after_table) if after_table else None,
            "baseline": str(baseline_table) if baseline_table else None,
        },
        **(extra or {}),
    }
