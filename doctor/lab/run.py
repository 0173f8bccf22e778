"""`doctor lab run`: every variant is a job on the job system; then the numbers, the decision, the canary.

Light (no torch): jobs run through `doctor.jobs.api.run` — monitor here, worker in a subprocess, one job
per device (the job system's lock), Ctrl-C cancels the running job cleanly. The lab remembers which job
ran which variant (`<rollout>/.doctor/lab/<name>/state.json`): a re-run reuses the variants whose job
succeeded with the same job spec and resumes a cancelled or failed retrain from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doctor.lab import decide as D
from doctor.lab.spec import LabSpec

SCHEMA = "peft-doctor/lab/1"
PLAN_SCHEMA = "peft-doctor/canary/1"
Progress = Callable[[dict[str, Any]], None]


class LabCancelled(Exception):
    """A variant's job was cancelled (Ctrl-C or `doctor jobs cancel`): the lab stops; a re-run resumes."""


# ---------------------------------------------------------------- job specs


def _manifest_recipe(rollout: Path) -> dict[str, Any]:
    from doctor.core.manifest import read_manifest

    try:
        return dict(read_manifest(rollout / "rollout.toml").get("recipe") or {})
    except Exception:
        return {}


def eval_subset(spec: LabSpec) -> Path:
    """The eval set every variant is scored on: the spec's, or `max_per_slice` examples per slice (seeded)."""
    if not spec.max_per_slice:
        return spec.eval_set
    rows = [json.loads(line) for line in spec.eval_set.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(spec.seed)
    keep: set[int] = set()
    for name in sorted({r["slice"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["slice"] == name]
        keep.update(rng.sample(idx, min(spec.max_per_slice, len(idx))))
    out = spec.lab_dir / f"eval_set.{spec.max_per_slice}-per-slice.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for i, r in enumerate(rows) if i in keep)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    return out


def _lab_field(spec: LabSpec, variant: str) -> dict[str, Any]:
    return {
        "variant": variant,
        "seed": spec.seed,
        "latency": {"requests": spec.measure["latency_requests"], "max_new_tokens": spec.measure["max_new_tokens"]},
    }


def _common(spec: LabSpec, kind: str, variant: str) -> dict[str, Any]:
    return {
        "schema": "peft-doctor/job/1",
        "kind": kind,
        "rollout": str(spec.rollout),
        "base_model": str(spec.base_model),
        "base_model_name": spec.base_model_name,
        "device": spec.device,
        "num_processes": spec.num_processes,
        "source": {"lab": spec.name, "variant": variant, "spec": str(spec.path)},
    }


def prompt_only_job(spec: LabSpec, eval_set: Path) -> dict[str, Any]:
    po = spec.prompt_only
    lab = {**_lab_field(spec, D.BASELINE), "template": po["template"], "few_shot": po["few_shot"]}
    if po["few_shot"]:
        lab["few_shot_file"] = str(spec.train)
    return {
        **_common(spec, "reeval", D.BASELINE),
        "adapter": None,
        "eval_set": str(eval_set),
        "variant": D.BASELINE,  # max_new_tokens stays the retrain eval's default: one eval protocol for all
        "lab": lab,
    }


def trained_job(spec: LabSpec, method: str, rank: int, eval_set: Path) -> dict[str, Any]:
    """A retrain at `rank` under the lab's one budget (the rollout's recipe otherwise)."""
    from doctor.jobs.spec import checkpoint_every

    name = f"{method}-r{rank}"
    recipe = _manifest_recipe(spec.rollout)
    recipe.pop("quantization", None)
    b = spec.budget
    recipe["max_steps"] = b["max_steps"]
    for key in ("per_device_train_batch_size", "learning_rate"):
        if b.get(key) is not None:
            recipe[key] = b[key]
    lora = dict(recipe.get("lora") or {})
    lora["r"] = rank
    lora["lora_alpha"] = float(spec.lora["alpha_per_rank"]) * rank
    for key in ("target_modules", "lora_dropout"):
        if spec.lora.get(key) is not None:
            lora[key] = spec.lora[key]
    recipe["lora"] = lora
    if method == "qlora":
        q = spec.qlora
        recipe["quantization"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": q["quant_type"],
            "bnb_4bit_compute_dtype": q["compute_dtype"],
            "bnb_4bit_use_double_quant": bool(q["double_quant"]),
        }
    lab = _lab_field(spec, name)
    lab["budget"] = {"max_tokens": b["max_tokens"] or None, "max_train_s": b["max_train_s"]}
    job = {
        **_common(spec, "retrain", name),
        "method": method,
        "recipe": recipe,
        "overrides": {},
        "data": {
            "train": str(spec.train),
            "train_slices": spec.train_slices,
            **({"mix": spec.mix} if spec.mix else {}),
        },
        "eval": {"eval_set": str(eval_set)},
        "adapter_name": spec.adapter_name,
        "register": False,  # the lab registers only the chosen variant, as the canary
        "lab": lab,
    }
    # Checkpoints make a cancelled variant resumable; a handful per run is enough (each costs a save).
    job["save_steps"] = b.get("checkpoint_every") or max(checkpoint_every(recipe) or 1, b["max_steps"] // 4, 1)
    return job


def digest(job_spec: dict[str, Any]) -> str:
    body = {k: v for k, v in job_spec.items() if k != "source"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- running


class _State:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("variants", {})

    def get(self, name: str) -> dict[str, Any] | None:
        return self.data["variants"].get(name)

    def put(self, name: str, **fields: Any) -> None:
        self.data["variants"].setdefault(name, {}).update(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def _run_variant(
    spec: LabSpec, state: _State, name: str, job_spec: dict[str, Any], progress: Progress, index: int, total: int
) -> dict[str, Any]:
    from doctor.jobs import api

    store = api.JobStore(spec.rollout)
    d = digest(job_spec)
    progress({"kind": "variant_start", "variant": name, "index": index, "total": total})

    def on_event(ev: dict[str, Any]) -> None:
        progress({"kind": "job_event", "variant": name, "event": ev})

    def on_created(job: Any) -> None:
        state.put(name, job=job.id, digest=d, started=time.time())
        progress({"kind": "job_created", "variant": name, "job": job.id})

    prev = state.get(name)
    job = None
    if prev and prev.get("digest") == d and prev.get("job"):
        try:
            old = store.get(prev["job"])
        except KeyError:
            old = None
        if old is not None and old.state == "succeeded":
            job = old
            progress({"kind": "variant_reused", "variant": name, "job": old.id})
        elif (
            old is not None
            and old.kind == "retrain"
            and old.state in ("failed", "cancelled")
            and api.last_checkpoint(old) is not None
        ):
            progress({"kind": "variant_resumed", "variant": name, "job": old.id})
            job = api.resume(old.id, spec.rollout, spec.launcher, block=True, on_event=on_event, on_created=on_created)
    if job is None:
        job = api.run(job_spec, spec.rollout, spec.launcher, on_event=on_event, on_created=on_created)
    state.put(name, job=job.id, digest=d, state=job.state)
    progress({"kind": "variant_done", "variant": name, "job": job.id, "state": job.state, "error": job.error})
    if job.state == "cancelled":
        raise LabCancelled(f"variant {name}: job {job.id} was cancelled; `doctor lab run {spec.path}` resumes")
    return job.to_dict()


def run_lab(spec: LabSpec, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) the whole lab and return its report (also written to <lab dir>/report.json)."""
    from doctor.jobs import api

    progress = progress or (lambda _e: None)
    t0 = time.time()
    spec.lab_dir.mkdir(parents=True, exist_ok=True)
    api.reconcile(api.JobStore(spec.rollout))
    state = _State(spec.lab_dir / "state.json")
    eval_set = eval_subset(spec)
    ranks = spec.lora["ranks"]
    total = 1 + len(ranks) + (1 if spec.qlora["enabled"] else 0)
    jobs: dict[str, dict[str, Any]] = {}
    methods: dict[str, tuple[str, int | None]] = {D.BASELINE: ("prompt_only", None)}
    jobs[D.BASELINE] = _run_variant(spec, state, D.BASELINE, prompt_only_job(spec, eval_set), progress, 1, total)
    for i, r in enumerate(ranks):
        name = f"lora-r{r}"
        methods[name] = ("lora", r)
        jobs[name] = _run_variant(spec, state, name, trained_job(spec, "lora", r, eval_set), progress, 2 + i, total)
    rows = _rows(spec, jobs, methods)
    if spec.qlora["enabled"]:
        rank = _qlora_rank(spec, rows)
        name = f"qlora-r{rank}"
        methods[name] = ("qlora", rank)
        jobs[name] = _run_variant(spec, state, name, trained_job(spec, "qlora", rank, eval_set), progress, total, total)
        rows = _rows(spec, jobs, methods)
    report = assemble(spec, jobs, methods, rows, eval_set, t0, register=True)
    path = spec.lab_dir / "report.json"
    tmp = path.with_name("report.json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    progress({"kind": "lab_done", "report": str(path), "chosen": report["chosen"]})
    return report


def assemble(
    spec: LabSpec,
    jobs: dict[str, dict[str, Any]],
    methods: dict[str, tuple[str, int | None]],
    rows: list[dict[str, Any]] | None,
    eval_set: Path,
    t0: float,
    register: bool = True,
) -> dict[str, Any]:
    """The report (schema peft-doctor/lab/1) from the variants' job records; registers the canary."""
    rows = rows if rows is not None else _rows(spec, jobs, methods)
    qvl = _qlora_vs_lora(spec, jobs, rows)
    decision = D.decide(rows, spec, qvl)
    for r in rows:
        r["chosen"] = r["name"] == decision["chosen"]
    canary = None
    if decision["chosen"] and register:
        chosen = next(r for r in rows if r["name"] == decision["chosen"])
        canary = register_canary(spec, chosen, rows[0], jobs[chosen["name"]])
    return {
        "schema": SCHEMA,
        "target": {**spec.target, "safety": spec.safety, "alpha": spec.alpha},
        "variants": rows,
        "chosen": decision["chosen"],
        "why": decision["why"],
        "canary": canary,
        "peft_justified": decision["peft_justified"],
        "qlora_vs_lora": qvl,
        "name": spec.name,
        "spec": str(spec.path),
        "rollout": str(spec.rollout),
        "eval_set": str(eval_set),
        "budget": spec.budget,
        "machine": {"cpu_count": os.cpu_count(), "device": _device(jobs)},
        "wall_s": round(time.time() - t0, 1),
    }


def _device(jobs: dict[str, dict[str, Any]]) -> str | None:
    for j in jobs.values():
        dev = ((j.get("outputs") or {}).get("lab") or {}).get("device")
        if dev:
            return dev
    return None


def _rows(
    spec: LabSpec, jobs: dict[str, dict[str, Any]], methods: dict[str, tuple[str, int | None]]
) -> list[dict[str, Any]]:
    tables = {
        n: Path(j["outputs"]["eval_table"])
        for n, j in jobs.items()
        if j.get("state") == "succeeded" and (j.get("outputs") or {}).get("eval_table")
    }
    comparisons = D.compare_tables(tables, spec) if D.BASELINE in tables and len(tables) > 1 else {}
    rows = []
    for name, (method, rank) in methods.items():
        row = D.variant_row(name, method, rank, jobs.get(name), comparisons.get(name), None, spec)
        row["meets_target"], row["failures"] = D.judge(row, spec)
        rows.append(row)
    return rows


def _qlora_rank(spec: LabSpec, rows: list[dict[str, Any]]) -> int:
    """The spec's rank, else the chosen LoRA rank, else (nothing meets) the LoRA rank with the best overall."""
    if spec.qlora["rank"] != "chosen":
        return int(spec.qlora["rank"])
    lora = sorted((r for r in rows if r["method"] == "lora"), key=lambda r: r["rank"])
    meeting = [r for r in lora if r["meets_target"]]
    if meeting:
        return meeting[0]["rank"]
    scored = [r for r in lora if r["overall"] is not None]
    return max(scored, key=lambda r: (r["overall"], -r["rank"]))["rank"] if scored else lora[-1]["rank"]


def _qlora_vs_lora(spec: LabSpec, jobs: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """QLoRA minus LoRA at the QLoRA rank: paired overall quality difference and peak-memory saving."""
    q = next((r for r in rows if r["method"] == "qlora" and r["overall"] is not None), None)
    if q is None:
        return None
    lora = next(
        (r for r in rows if r["method"] == "lora" and r["rank"] == q["rank"] and r["overall"] is not None), None
    )
    if lora is None:
        return None
    tables = {n: Path(jobs[n]["outputs"]["eval_table"]) for n in (lora["name"], q["name"])}
    cmp = D.compare_tables(tables, spec, baseline=lora["name"]).get(q["name"]) or {}
    o = cmp.get("overall") or {}
    lp, qp = lora.get("peak_memory_bytes"), q.get("peak_memory_bytes")
    return {
        "rank": q["rank"],
        "lora": lora["name"],
        "qlora": q["name"],
        "delta": o.get("delta"),
        "ci_low": o.get("ci_low"),
        "ci_high": o.get("ci_high"),
        "p": o.get("p"),
        "lora_peak_memory_bytes": lp,
        "qlora_peak_memory_bytes": qp,
        "memory_saved_bytes": (lp - qp) if isinstance(lp, int) and isinstance(qp, int) else None,
        "memory_kind": q.get("memory_kind"),
    }


# ---------------------------------------------------------------- the canary


def registry_path(rollout: Path) -> Path:
    """The rollout's registry: manifest [serving] registry, else <rollout>/registry.yaml (as the job system)."""
    from doctor.core.manifest import read_manifest, resolve

    try:
        reg = resolve(rollout, (read_manifest(rollout / "rollout.toml").get("serving") or {}).get("registry"))
        if reg is not None:
            return reg
    except Exception:
        pass
    return rollout / "registry.yaml"


def register_canary(
    spec: LabSpec, chosen: dict[str, Any], baseline: dict[str, Any], job: dict[str, Any]
) -> dict[str, Any]:
    """Write the canary plan and register the chosen adapter version as the canary (once per version)."""
    from probes.registry.store import add_version, load

    outputs = job["outputs"]
    version, folder = int(outputs["version"]), Path(outputs["adapter"])
    thresholds = D.canary_thresholds(chosen, baseline, spec)
    reg_path = registry_path(spec.rollout)
    plan_path = spec.rollout / "canary" / f"{spec.adapter_name}-v{version}.json"
    table = spec.rollout / "eval" / f"canary-{spec.adapter_name}-v{version}.csv"
    plan = {
        "schema": PLAN_SCHEMA,
        "adapter": spec.adapter_name,
        "version": version,
        "variant": "canary",
        "eval_table": os.path.relpath(table, plan_path.parent),
        "thresholds": thresholds,
        "lab": {
            "name": spec.name,
            "variant": chosen["name"],
            "job": job["id"],
            "report": str(spec.lab_dir / "report.json"),
            "slices": {k: {"n": v["n"], "accuracy": v["accuracy"]} for k, v in chosen["slices"].items()},
            "refusal_rate": chosen.get("refusal_rate"),
        },
        "rule": "min(prompt-only accuracy + lower 95% bound of the paired gain, lower 95% Wilson bound of the "
        "variant's accuracy), rounded down; safety slices likewise for the refusal rate",
    }
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    existing = load(reg_path).get(spec.adapter_name, version) if reg_path.is_file() else None
    if existing is None:
        quant = (job["spec"].get("recipe") or {}).get("quantization") if chosen["method"] == "qlora" else None
        out_dir = Path(outputs.get("out_dir") or folder)
        entry = add_version(
            reg_path,
            {
                "name": spec.adapter_name,
                "version": version,
                "path": os.path.relpath(folder, reg_path.parent),
                "base_model": spec.base_model_name or str(spec.base_model),
                "quantization": (quant or {}).get("bnb_4bit_quant_type", "nf4") if quant else "none",
                "method": chosen["method"],
                "training_run": os.path.relpath(out_dir / "train", reg_path.parent),
                "eval_report": os.path.relpath(outputs.get("eval_table") or table, reg_path.parent),
                "status": "canary",  # the registry retires the previous canary of this name
                "gate": "passed",  # it met the lab's target: a later version may roll back to it
                "canary_plan": os.path.relpath(plan_path, reg_path.parent),
            },
        )
    else:
        entry = existing
    return {
        "adapter": spec.adapter_name,
        "version": version,
        "thresholds": thresholds,
        "plan": str(plan_path),
        "registry": str(reg_path),
        "eval_table": str(table),
        "rollback_to": entry.get("rollback_to"),
        "status": entry.get("status"),
    }
