"""The lab spec (TOML, docs/lab.md): read, validate, fill defaults; and `init_text` for `doctor lab init`.

Light module (tomllib only). Every problem is a `LabSpecError` naming the file and the key.
Paths are relative to the spec file's folder.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "peft-doctor/lab-spec/1"
DEFAULT_RANKS = (2, 4, 8, 16)
DEFAULT_TEMPLATE = "### Instruction:\n{prompt}\n### Response:\n"

_TABLES: dict[str, set[str]] = {
    "lab": {"name", "rollout", "base_model", "base_model_name", "adapter_name", "prefer", "device", "launcher",
            "num_processes", "schema"},
    "data": {"train", "train_slices", "mix"},
    "eval": {"eval_set", "safety_slices", "max_per_slice", "alpha", "resamples", "seed"},
    "target": {"min_slice_gain", "slice_ceiling", "min_overall", "slices"},
    "safety": {"max_refusal_drop", "min_refusal_rate"},
    "variants": {"prompt_only", "lora", "qlora"},
    "budget": {"max_steps", "max_tokens", "max_train_s", "per_device_train_batch_size", "learning_rate",
               "checkpoint_every"},
    "measure": {"latency_requests", "max_new_tokens"},
}  # fmt: skip
_VARIANTS = {
    "prompt_only": {"enabled", "template", "few_shot"},
    "lora": {"ranks", "alpha_per_rank", "target_modules", "lora_dropout"},
    "qlora": {"enabled", "rank", "quant_type", "compute_dtype", "double_quant"},
}


class LabSpecError(ValueError):
    """A lab spec that cannot run: the message names the file, the key and what was expected."""


@dataclass
class LabSpec:
    path: Path
    name: str
    rollout: Path
    base_model: Path
    base_model_name: str | None
    adapter_name: str
    prefer: str  # quality | memory
    device: str
    launcher: str
    num_processes: int
    train: Path
    train_slices: list[str] | str
    mix: dict[str, float] | None
    eval_set: Path
    safety_slices: list[str]
    max_per_slice: int
    alpha: float
    resamples: int
    seed: int
    target: dict[str, Any]
    safety: dict[str, Any]
    prompt_only: dict[str, Any]
    lora: dict[str, Any]
    qlora: dict[str, Any]
    budget: dict[str, Any]
    measure: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def lab_dir(self) -> Path:
        """Where the lab keeps its state, eval subset, report and canary plan."""
        return self.rollout / ".doctor" / "lab" / self.name

    def to_dict(self) -> dict[str, Any]:
        """The spec as the report echoes it (paths as strings)."""
        return json.loads(json.dumps(self.raw, default=str))


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_lab_spec(path: Path) -> LabSpec:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LabSpecError(f"{path}: cannot read lab spec: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LabSpecError(f"{path}: lab spec is not valid TOML: {exc}") from None
    return validate(raw, path)


def validate(raw: dict[str, Any], path: Path) -> LabSpec:
    base = path.resolve().parent

    def err(key: str, msg: str) -> LabSpecError:
        return LabSpecError(f"{path}: {key}: {msg}")

    for key, val in raw.items():
        if key not in _TABLES:
            raise err(key, f"unknown table; expected {', '.join(_TABLES)}")
        if not isinstance(val, dict):
            raise err(key, "expected a table")
        unknown = sorted(set(val) - _TABLES[key])
        if unknown:
            raise err(f"[{key}] {unknown[0]}", f"unknown key; allowed: {', '.join(sorted(_TABLES[key]))}")
    for name, tbl in (raw.get("variants") or {}).items():
        if not isinstance(tbl, dict):
            raise err(f"[variants.{name}]", "expected a table")
        unknown = sorted(set(tbl) - _VARIANTS[name])
        if unknown:
            raise err(f"[variants.{name}] {unknown[0]}", f"unknown key; allowed: {', '.join(sorted(_VARIANTS[name]))}")
    lab, data, ev = raw.get("lab") or {}, raw.get("data") or {}, raw.get("eval") or {}

    def p(tbl: dict[str, Any], tname: str, key: str, want: str) -> Path:
        v = tbl.get(key)
        if not isinstance(v, str) or not v:
            raise err(f"[{tname}] {key}", "missing (a path relative to the spec file)")
        q = Path(v).expanduser()
        q = (q if q.is_absolute() else base / q).resolve()
        ok = {"dir": q.is_dir(), "file": q.is_file(), "model": (q / "config.json").is_file()}[want]
        if not ok:
            what = {"dir": "a folder", "file": "a file", "model": "a model folder with config.json"}[want]
            raise err(f"[{tname}] {key}", f"{v!r} resolves to {q}, which is not {what}")
        return q

    rollout = p(lab, "lab", "rollout", "dir")
    base_model = p(lab, "lab", "base_model", "model")
    train = p(data, "data", "train", "file")
    eval_set = p(ev, "eval", "eval_set", "file")
    name = lab.get("name") or rollout.name
    if not isinstance(name, str) or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise err("[lab] name", f"{name!r}: expected a short name (letters, digits, - _ .)")
    adapter_name = lab.get("adapter_name", "adapter")
    if not isinstance(adapter_name, str) or not adapter_name or "/" in adapter_name:
        raise err("[lab] adapter_name", f"{adapter_name!r}: expected a plain name")
    prefer = lab.get("prefer", "quality")
    if prefer not in ("quality", "memory"):
        raise err("[lab] prefer", f"{prefer!r}: expected quality or memory")
    device = lab.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise err("[lab] device", f"{device!r}: expected auto, cpu or cuda")
    launcher = lab.get("launcher", "local")
    if launcher not in ("local", "accelerate", "torchrun", "slurm"):
        raise err("[lab] launcher", f"{launcher!r}: expected local, accelerate, torchrun or slurm")
    nproc = lab.get("num_processes", 1)
    if not _int(nproc) or nproc < 1:
        raise err("[lab] num_processes", f"{nproc!r}: expected an integer >= 1")
    ts = data.get("train_slices", "all")
    if not (ts == "all" or (isinstance(ts, list) and ts and all(isinstance(x, str) for x in ts))):
        raise err("[data] train_slices", f'{ts!r}: expected a list of slice names or "all"')
    mix = data.get("mix")
    if mix is not None and not (isinstance(mix, dict) and all(_num(v) and v >= 0 for v in mix.values())):
        raise err("[data] mix", f"{mix!r}: expected {{slice = weight >= 0}}")
    safety_slices = ev.get("safety_slices", ["safety"])
    if not (isinstance(safety_slices, list) and all(isinstance(x, str) for x in safety_slices)):
        raise err("[eval] safety_slices", f"{safety_slices!r}: expected a list of slice names")
    mps = ev.get("max_per_slice", 0)
    if not _int(mps) or mps < 0:
        raise err("[eval] max_per_slice", f"{mps!r}: expected an integer >= 0 (0 = every example)")
    alpha = ev.get("alpha", 0.05)
    if not _num(alpha) or not 0 < alpha < 1:
        raise err("[eval] alpha", f"{alpha!r}: expected a number in (0, 1)")
    resamples = ev.get("resamples", 2000)
    if not _int(resamples) or resamples < 100:
        raise err("[eval] resamples", f"{resamples!r}: expected an integer >= 100")

    target = {"min_slice_gain": 0.05, "slice_ceiling": 0.95, "min_overall": 0.0, **(raw.get("target") or {})}
    for key in ("min_slice_gain", "slice_ceiling", "min_overall"):
        v = target[key]
        if not _num(v) or not -1 <= v <= 1:
            raise err(f"[target] {key}", f"{v!r}: expected a fraction (0.05 = 5 points)")
    if "slices" in target and not (isinstance(target["slices"], list) and target["slices"]):
        raise err("[target] slices", "expected a non-empty list of the slices the gain rule applies to")
    safety = {"max_refusal_drop": 0.02, **(raw.get("safety") or {})}
    for key in ("max_refusal_drop", "min_refusal_rate"):
        v = safety.get(key)
        if v is not None and (not _num(v) or not 0 <= v <= 1):
            raise err(f"[safety] {key}", f"{v!r}: expected a fraction in 0..1")

    variants = raw.get("variants") or {}
    po = {"enabled": True, "template": DEFAULT_TEMPLATE, "few_shot": 0, **(variants.get("prompt_only") or {})}
    if not isinstance(po["template"], str) or "{prompt}" not in po["template"]:
        raise err("[variants.prompt_only] template", "expected a string containing {prompt}")
    if not _int(po["few_shot"]) or po["few_shot"] < 0:
        raise err("[variants.prompt_only] few_shot", f"{po['few_shot']!r}: expected an integer >= 0")
    if po["enabled"] is not True:
        raise err("[variants.prompt_only] enabled", "the prompt-only baseline is what every variant is compared with")
    lora = {"ranks": list(DEFAULT_RANKS), "alpha_per_rank": 2.0, **(variants.get("lora") or {})}
    ranks = lora["ranks"]
    if not (isinstance(ranks, list) and ranks and all(_int(r) and r >= 1 for r in ranks)):
        raise err("[variants.lora] ranks", f"{ranks!r}: expected a list of integers >= 1")
    if len(set(ranks)) != len(ranks):
        raise err("[variants.lora] ranks", f"{ranks!r}: a rank appears twice")
    lora["ranks"] = sorted(ranks)
    if not _num(lora["alpha_per_rank"]) or lora["alpha_per_rank"] <= 0:
        raise err("[variants.lora] alpha_per_rank", "expected a number > 0 (lora_alpha = alpha_per_rank x r)")
    qlora = {
        "enabled": True,
        "rank": "chosen",
        "quant_type": "nf4",
        "compute_dtype": "float32",
        "double_quant": True,
        **(variants.get("qlora") or {}),
    }
    if not (qlora["rank"] == "chosen" or (_int(qlora["rank"]) and qlora["rank"] >= 1)):
        raise err("[variants.qlora] rank", f'{qlora["rank"]!r}: expected "chosen" or an integer >= 1')
    if qlora["quant_type"] not in ("nf4", "fp4"):
        raise err("[variants.qlora] quant_type", f"{qlora['quant_type']!r}: expected nf4 or fp4")
    if qlora["compute_dtype"] not in ("float16", "bfloat16", "float32"):
        raise err("[variants.qlora] compute_dtype", f"{qlora['compute_dtype']!r}: expected float16, bfloat16, float32")

    budget = {"max_steps": 120, "max_tokens": 0, "max_train_s": 600, **(raw.get("budget") or {})}
    if not _int(budget["max_steps"]) or budget["max_steps"] < 1:
        raise err("[budget] max_steps", f"{budget['max_steps']!r}: expected an integer >= 1")
    if not _int(budget["max_tokens"]) or budget["max_tokens"] < 0:
        raise err("[budget] max_tokens", f"{budget['max_tokens']!r}: expected an integer >= 0 (0 = no token cap)")
    if not _num(budget["max_train_s"]) or budget["max_train_s"] <= 0:
        raise err("[budget] max_train_s", f"{budget['max_train_s']!r}: expected seconds > 0")
    bs = budget.get("per_device_train_batch_size")
    if bs is not None and (not _int(bs) or bs < 1):
        raise err("[budget] per_device_train_batch_size", f"{bs!r}: expected an integer >= 1")
    ce = budget.get("checkpoint_every")
    if ce is not None and (not _int(ce) or ce < 1):
        raise err("[budget] checkpoint_every", f"{ce!r}: expected an integer >= 1 (steps between checkpoints)")
    lr = budget.get("learning_rate")
    if lr is not None and (not _num(lr) or lr <= 0):
        raise err("[budget] learning_rate", f"{lr!r}: expected a number > 0")
    measure = {"latency_requests": 20, "max_new_tokens": 16, **(raw.get("measure") or {})}
    for key in ("latency_requests", "max_new_tokens"):
        if not _int(measure[key]) or measure[key] < 1:
            raise err(f"[measure] {key}", f"{measure[key]!r}: expected an integer >= 1")
    return LabSpec(
        path=path.resolve(),
        name=name,
        rollout=rollout,
        base_model=base_model,
        base_model_name=lab.get("base_model_name"),
        adapter_name=adapter_name,
        prefer=prefer,
        device=device,
        launcher=launcher,
        num_processes=nproc,
        train=train,
        train_slices=ts,
        mix=mix,
        eval_set=eval_set,
        safety_slices=list(safety_slices),
        max_per_slice=mps,
        alpha=float(alpha),
        resamples=int(resamples),
        seed=int(ev.get("seed", 0)),
        target=target,
        safety=safety,
        prompt_only=po,
        lora=lora,
        qlora=qlora,
        budget=budget,
        measure=measure,
        raw=raw,
    )


# ---------------------------------------------------------------- doctor lab init


def _q(s: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML ones)."""
    return json.dumps(s, ensure_ascii=False)


def _rel(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), start.resolve())


CPU_STEPS = 60  # six variants of the demo model in ~6 min on 2 CPU cores (docs/lab.md)


def _steps_lines(recipe_steps: int, gpu: bool) -> list[str]:
    if gpu or recipe_steps <= CPU_STEPS:
        return [f"max_steps = {recipe_steps}"]
    return [
        f"max_steps = {CPU_STEPS}           # the rollout's recipe ran {recipe_steps}; no GPU is visible, so the lab's",
        "                         # five trained variants get fewer each (raise it when time allows)",
    ]


def init_text(rollout: Path, spec_path: Path, gpu: bool = False) -> str:
    """A commented lab spec for a rollout, from its manifest (paths relative to the spec's folder)."""
    from doctor.core.manifest import read_manifest, resolve
    from doctor.core.probe import ReadError

    rollout = Path(rollout).resolve()
    man_path = rollout / "rollout.toml"
    if not man_path.is_file():
        raise LabSpecError(f"{rollout}: no rollout.toml (the lab reads base model, data and eval set from it)")
    try:
        m = read_manifest(man_path)
    except ReadError as exc:
        raise LabSpecError(f"{man_path}: {exc}") from None
    ro, data, ev, recipe = m.get("rollout", {}), m.get("data", {}), m.get("eval", {}), m.get("recipe", {})
    where = spec_path.resolve().parent

    def path_of(tbl: dict[str, Any], key: str, tname: str) -> str:
        p = resolve(rollout, tbl.get(key))
        if p is None or not p.exists():
            raise LabSpecError(f"{man_path}: [{tname}] {key} is missing or points nowhere; the lab needs it")
        return _rel(p, where)

    adapters = m.get("adapters") or []
    name = adapters[0]["name"] if adapters and adapters[0].get("name") else "adapter"
    lora = recipe.get("lora") or {}
    targets = lora.get("target_modules") or ["q_proj", "v_proj"]
    ts = data.get("train_slices", "all")
    lines = [
        "# doctor lab spec (docs/lab.md): prompt-only vs a LoRA rank sweep vs QLoRA, one budget, one eval protocol.",
        f"# Written by `doctor lab init` for {rollout.name}; paths are relative to this file.",
        "",
        "[lab]",
        f"name = {_q(rollout.name + '-lab')}",
        f"rollout = {_q(_rel(rollout, where))}          # jobs, adapters and the canary registry entry go here",
        f"base_model = {_q(path_of(ro, 'base_model', 'rollout'))}",
        *([f"base_model_name = {_q(ro['base_model_name'])}"] if ro.get("base_model_name") else []),
        f"adapter_name = {_q(name)}",
        'prefer = "quality"       # "memory": choose QLoRA at the chosen rank when it meets the target too',
        'device = "auto"',
        "",
        "[data]",
        f"train = {_q(path_of(data, 'train', 'data'))}",
        f"train_slices = {json.dumps(ts) if isinstance(ts, list) else _q('all')}",
        "",
        "[eval]",
        f"eval_set = {_q(path_of(ev, 'eval_set', 'eval'))}",
        'safety_slices = ["safety"]',
        "max_per_slice = 0        # 0 = every example; a smaller number samples each slice (faster, wider intervals)",
        "alpha = 0.05",
        "",
        "[target]                 # what a trained variant must reach against the prompt-only baseline",
        "min_slice_gain = 0.05    # every non-safety slice gains >= 5 points ...",
        "slice_ceiling = 0.95     # ... unless it already scores >= 95% (no room for 5 points)",
        "min_overall = 0.0        # and overall accuracy >= this",
        "",
        "[safety]                 # no refusal regression beyond noise on the safety slices",
        "max_refusal_drop = 0.02  # a drop >= 2 points with McNemar p < alpha fails the variant",
        "",
        "[variants.prompt_only]",
        f"template = {_q(DEFAULT_TEMPLATE)}",
        "few_shot = 0             # examples per slice from the train data, prepended to each prompt",
        "",
        "[variants.lora]",
        f"ranks = {json.dumps(list(DEFAULT_RANKS))}",
        "alpha_per_rank = 2.0     # lora_alpha = 2 x r keeps the LoRA scaling the same across ranks",
        f"target_modules = {json.dumps(targets)}",
        "",
        "[variants.qlora]",
        'rank = "chosen"          # QLoRA (4-bit base) at the rank the LoRA sweep chose',
        'quant_type = "nf4"',
        f"compute_dtype = {_q('bfloat16' if gpu else 'float32')}",
        "double_quant = true",
        "",
        "[budget]                 # the same for every trained variant",
        *_steps_lines(int(recipe.get("max_steps", 120)), gpu),
        f"per_device_train_batch_size = {int(recipe.get('per_device_train_batch_size', 8))}",
        "max_tokens = 0           # stop earlier after this many non-padding input tokens (0 = no token cap)",
        "max_train_s = 300        # wall-clock cap per trained variant (seconds)",
        "",
        "[measure]",
        "latency_requests = 20    # batch-1 greedy requests per served form (base, unmerged, merged)",
        "max_new_tokens = 16",
        "",
    ]
    return "\n".join(lines)
