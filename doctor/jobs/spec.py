"""Job specs (JSON, docs/jobs.md): validation, path resolution, and specs built from triage actions.

Light module (no torch): the CLI, the TUI and the monitor import it. Every problem is a `SpecError`
raised before anything starts.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from doctor.jobs import parity
from doctor.playbook.recipe import DATA_KEYS, RecipeError, apply_overrides, check_values, validate_overrides

SCHEMA = "peft-doctor/job/1"
KINDS = ("retrain", "reeval", "parity")
METHODS = ("lora", "qlora")
SCORERS = ("exact", "contains", "regex", "refusal")
DEVICES = ("auto", "cpu", "cuda")
COMPUTE_DTYPES = ("float16", "bfloat16", "float32")
QUANT_TYPES = ("nf4", "fp4")
DEFAULT_ADAPTER_NAME = "adapter"

_COMMON = {
    "schema",
    "kind",
    "rollout",
    "base_model",
    "base_model_name",
    "device",
    "launcher",
    "num_processes",
    "note",
    "source",
    "lab",  # a `doctor lab` variant: budget, prompt template, measurement settings (docs/lab.md)
}
_RETRAIN = _COMMON | {
    "method",
    "recipe",
    "overrides",
    "data",
    "eval",
    "adapter_name",
    "save_steps",
    "resume_from_checkpoint",
    "register",
    "max_length",
    "trainer",
}
_REEVAL = _COMMON | {"adapter", "eval_set", "variant", "quantization", "scorers", "batch_size", "max_new_tokens"}
_PARITY = _COMMON | parity.FIELDS  # doctor/jobs/parity.py
_PATH_KEYS = ("rollout", "base_model", "adapter", "eval_set", "resume_from_checkpoint")


class SpecError(ValueError):
    """A job spec that cannot run: the message names the field and what was expected."""


def load_spec(path: Path) -> dict[str, Any]:
    """Read a spec file and validate it; relative paths are taken from the spec file's folder."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read job spec: {exc.strerror}") from None
    except ValueError as exc:
        raise SpecError(f"{path}: job spec is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a job spec is a JSON object")
    return validate_spec(data, base_dir=Path(path).resolve().parent)


def _abs(value: Any, base_dir: Path | None, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{field}: expected a path, got {value!r}")
    p = Path(value).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return str(p.resolve()) if base_dir is not None else str(p)


def validate_spec(spec: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """A normalized copy of `spec` (absolute paths, defaults filled in) or a SpecError."""
    if not isinstance(spec, dict):
        raise SpecError("a job spec is a JSON object")
    s = copy.deepcopy(spec)
    schema = s.setdefault("schema", SCHEMA)
    if schema != SCHEMA:
        raise SpecError(f"schema {schema!r}; expected {SCHEMA!r}")
    kind = s.get("kind")
    if kind not in KINDS:
        raise SpecError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    allowed = {"retrain": _RETRAIN, "reeval": _REEVAL, "parity": _PARITY}[kind]
    unknown = sorted(set(s) - allowed)
    if unknown:
        raise SpecError(f"unknown {kind} spec field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for key in ("rollout", "base_model"):
        if not s.get(key):
            raise SpecError(
                f"missing {key}: a {kind} job needs the {'rollout folder' if key == 'rollout' else 'base model folder'}"
            )
    for key in _PATH_KEYS:
        if s.get(key) is not None:
            s[key] = _abs(s[key], base_dir, key)
    if not Path(s["rollout"]).is_dir():
        raise SpecError(f"rollout {s['rollout']}: no such folder")
    if not (Path(s["base_model"]) / "config.json").is_file():
        raise SpecError(f"base_model {s['base_model']}: no config.json there (a model folder is expected)")
    base = Path(s["base_model"])
    pickles = sorted(p.name for p in (*base.glob("*.bin"), *base.glob("*.pt")))
    if pickles and not any(base.glob("*.safetensors")):
        raise SpecError(
            f"base_model {base}: only {', '.join(pickles)} (pickled weights, which can run code when loaded); "
            "jobs load safetensors only — convert it once where you trust it: "
            "`AutoModelForCausalLM.from_pretrained(path).save_pretrained(path, safe_serialization=True)`"
        )
    device = s.setdefault("device", "auto")
    if device not in DEVICES:
        raise SpecError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    n = s.setdefault("num_processes", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SpecError(f"num_processes {n!r}: expected an integer >= 1")
    _validate_lab(s.get("lab"))
    if kind == "retrain":
        _validate_retrain(s, base_dir)
    elif kind == "parity":
        try:
            parity.validate(s, lambda v, f: _abs(v, base_dir, f))
        except parity.ParitySpecError as exc:
            raise SpecError(str(exc)) from None
    else:
        _validate_reeval(s, base_dir)
    return s


_LAB_KEYS = {"variant", "template", "few_shot", "few_shot_file", "seed", "budget", "latency"}


def _validate_lab(lab: Any) -> None:
    if lab is None:
        return
    if not isinstance(lab, dict):
        raise SpecError("lab: expected an object (a doctor lab variant; docs/lab.md)")
    unknown = sorted(set(lab) - _LAB_KEYS)
    if unknown:
        raise SpecError(f"lab: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_LAB_KEYS))}")
    for key in ("budget", "latency"):
        if not isinstance(lab.get(key) or {}, dict):
            raise SpecError(f"lab.{key}: expected an object")
    t = lab.get("template")
    if t is not None and (not isinstance(t, str) or "{prompt}" not in t):
        raise SpecError(f"lab.template {t!r}: expected a string containing {{prompt}}")


def _validate_retrain(s: dict[str, Any], base_dir: Path | None) -> None:
    method = s.get("method")
    if method not in METHODS:
        raise SpecError(f"method {method!r}: expected lora or qlora")
    recipe = s.get("recipe")
    if not isinstance(recipe, dict):
        raise SpecError("recipe: expected the rollout's recorded recipe (a JSON object of TrainingArguments fields)")
    overrides = s.setdefault("overrides", {})
    if not isinstance(overrides, dict):
        raise SpecError("overrides: expected an object {field: value}")
    try:
        validate_overrides(overrides)
    except RecipeError as exc:
        raise SpecError(f"overrides: {exc}") from None
    if not isinstance(recipe.get("lora", {}), dict):
        raise SpecError("recipe.lora: expected an object of LoraConfig fields")
    try:
        check_values(recipe)
    except RecipeError as exc:
        raise SpecError(f"recipe: {exc}") from None
    if "data" in recipe:
        raise SpecError("recipe.data: the data selection goes in the spec's `data` object")
    quant = recipe.get("quantization")
    if method == "qlora":
        if not isinstance(quant, dict) or not quant.get("load_in_4bit"):
            raise SpecError("method qlora needs recipe.quantization with load_in_4bit = true (nf4)")
        qt = quant.get("bnb_4bit_quant_type", "nf4")
        if qt not in QUANT_TYPES:
            raise SpecError(f"recipe.quantization.bnb_4bit_quant_type {qt!r}: expected nf4 or fp4")
        dt = quant.get("bnb_4bit_compute_dtype", "bfloat16")
        if dt not in COMPUTE_DTYPES:
            raise SpecError(
                f"recipe.quantization.bnb_4bit_compute_dtype {dt!r}: expected one of {', '.join(COMPUTE_DTYPES)}"
            )
    elif quant:
        raise SpecError("method lora with recipe.quantization: use method qlora for a 4-bit base, or drop quantization")
    data = s.get("data")
    if not isinstance(data, dict) or not data.get("train"):
        raise SpecError("data.train: a retrain needs the training data (JSONL)")
    unknown = sorted(set(data) - DATA_KEYS)
    if unknown:
        raise SpecError(f"data: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(DATA_KEYS))}")
    data["train"] = _abs(data["train"], base_dir, "data.train")
    if not Path(data["train"]).is_file():
        raise SpecError(f"data.train {data['train']}: no such file")
    ts = data.get("train_slices", "all")
    if ts in (None, "all"):
        data["train_slices"] = "all"
    elif not (isinstance(ts, list) and ts and all(isinstance(x, str) for x in ts)):
        raise SpecError(f"data.train_slices {ts!r}: expected a list of slice names or 'all'")
    mix = data.get("mix")
    if mix is not None and not (
        isinstance(mix, dict) and all(isinstance(v, (int, float)) and v >= 0 for v in mix.values())
    ):
        raise SpecError(f"data.mix {mix!r}: expected {{slice: weight >= 0}}")
    ev = s.setdefault("eval", {})
    if not isinstance(ev, dict):
        raise SpecError("eval: expected an object with eval_set (the re-eval that follows the retrain)")
    if ev.get("eval_set"):
        ev["eval_set"] = _abs(ev["eval_set"], base_dir, "eval.eval_set")
        if not Path(ev["eval_set"]).is_file():
            raise SpecError(f"eval.eval_set {ev['eval_set']}: no such file")
    s.setdefault("adapter_name", DEFAULT_ADAPTER_NAME)
    if not isinstance(s["adapter_name"], str) or not s["adapter_name"] or "/" in s["adapter_name"]:
        raise SpecError(f"adapter_name {s['adapter_name']!r}: expected a plain name")
    for key in ("save_steps", "max_length"):
        v = s.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise SpecError(f"{key} {v!r}: expected an integer >= 1")
    s.setdefault("register", True)
    trainer = s.get("trainer")
    if trainer is not None:
        cmd = trainer.get("command") if isinstance(trainer, dict) else None
        if not (isinstance(cmd, list) and cmd and all(isinstance(x, str) and x for x in cmd)):
            raise SpecError(
                'trainer.command: expected the training command as a list, e.g. ["trl", "sft", "--config", "sft.yaml"]'
            )
        if trainer.get("cwd") is not None:
            trainer["cwd"] = _abs(trainer["cwd"], base_dir, "trainer.cwd")


def _validate_reeval(s: dict[str, Any], base_dir: Path | None) -> None:
    if not s.get("eval_set"):
        raise SpecError("missing eval_set: a reeval job needs the eval set (JSONL)")
    if not Path(s["eval_set"]).is_file():
        raise SpecError(f"eval_set {s['eval_set']}: no such file")
    adapter = s.get("adapter")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise SpecError(f"adapter {adapter}: no adapter_config.json there (null evaluates the base model alone)")
    s.setdefault("variant", "base" if adapter is None else "lora")
    if not isinstance(s["variant"], str) or not s["variant"].replace("-", "_").replace(".", "_").isidentifier():
        raise SpecError(f"variant {s['variant']!r}: expected a short name such as base, lora, qlora")
    scorers = s.setdefault("scorers", {})
    if not isinstance(scorers, dict):
        raise SpecError("scorers: expected {slice: scorer} (scorers: exact, contains, regex, refusal)")
    for sl, sc in scorers.items():
        if sc not in SCORERS:
            raise SpecError(f"scorers.{sl} = {sc!r}: expected one of {', '.join(SCORERS)}")
    q = s.get("quantization")
    if q is not None and not isinstance(q, dict):
        raise SpecError("quantization: expected BitsAndBytesConfig fields or null")


# ---------------------------------------------------------------- specs from the rollout / triage


def _manifest(rollout_root: Path) -> dict[str, Any]:
    from doctor.core.manifest import read_manifest
    from doctor.core.probe import ReadError

    path = Path(rollout_root) / "rollout.toml"
    if not path.is_file():
        raise SpecError(
            f"{rollout_root}: no rollout.toml (a job needs the rollout's manifest and recipe); make it a rollout "
            f"first: doctor init {rollout_root} --base-model DIR --train-data FILE"
        )
    try:
        return read_manifest(path)
    except ReadError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _rel(root: Path, value: str | None) -> str | None:
    from doctor.core.manifest import resolve

    p = resolve(root, value)
    return str(p.resolve()) if p is not None else None


def _manifest_path(root: Path, table: str, key: str, value: str | None, want: str) -> str | None:
    """A manifest path made absolute; a SpecError that says where it came from when it points nowhere.

    `want` is "config.json" (a model folder), "adapter_config.json" (an adapter folder) or "file".
    """
    resolved = _rel(root, value)
    if resolved is None:
        return None
    p = Path(resolved)
    ok = p.is_file() if want == "file" else (p / want).is_file()
    if ok:
        return resolved
    what = "is not a file" if want == "file" else f"has no {want}"
    field = key.split(".")[-1]
    if Path(value).expanduser().is_absolute():  # type: ignore[arg-type]
        where, hint = f"{resolved}", f"edit {field} in the manifest"
    else:
        where = f"resolves to {resolved}"
        hint = (
            "the manifest's paths are relative to its folder: copy the rollout together with what they point to "
            f"— for a demo rollout, the whole fixtures/ folder — or edit {field}"
        )
    raise SpecError(f"{root / 'rollout.toml'}: [{table}] {field} {json.dumps(value)} {where}, which {what} ({hint})")


def spec_from_action(
    rollout_root: Path | str, action: dict[str, Any], *, base_recipe: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A validated spec for a playbook job action `{kind: retrain|reeval, overrides: {...}}` on a rollout.

    Also accepts a triage action `{"kind": "job", "job": {...}}`. The recorded [recipe] (or `base_recipe`,
    the recipe of an earlier attempt of `doctor fix`) gets the overrides (`doctor.playbook.recipe.apply_overrides`);
    data fields (train_slices, mix, train) override the [data] table. A learning-rate override is bounded
    by the method's usual range (doctor.jobs.lrbounds); `source.changes` records every changed field.
    """
    root = Path(rollout_root).resolve()
    if action.get("kind") == "job":
        action = dict(action.get("job") or {})
    kind = action.get("kind")
    if kind not in KINDS:
        raise SpecError(f"job action kind {kind!r}: expected retrain, reeval or parity")
    overrides = dict(action.get("overrides") or {})
    try:
        validate_overrides(overrides)
    except RecipeError as exc:
        raise SpecError(f"overrides: {exc}") from None
    m = _manifest(root)
    ro = m.get("rollout", {})
    base = _manifest_path(root, "rollout", "base_model", ro.get("base_model"), "config.json")
    if not base:
        raise SpecError(f"{root}/rollout.toml: [rollout] base_model is missing")
    ev = m.get("eval", {})
    eval_set = _manifest_path(root, "eval", "eval_set", ev.get("eval_set"), "file")
    adapters = m.get("adapters") or []
    spec: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "rollout": str(root),
        "base_model": base,
        "base_model_name": ro.get("base_model_name"),
        "source": {"action": action},
    }
    if kind == "parity":  # the rollout's first adapter against its merged export, on the eval set
        first = adapters[0] if adapters else None
        if first is None or not eval_set:
            raise SpecError(f"{root}/rollout.toml: a parity job needs [[adapters]] and [eval] eval_set")
        quant = (m.get("recipe") or {}).get("quantization") if ro.get("method") == "qlora" else None
        spec["adapter"] = _manifest_path(root, "adapters", "path", first["path"], "adapter_config.json")
        spec["eval_set"] = eval_set
        spec.update({k: v for k, v in {"quantization": quant, "merged": action.get("merged")}.items() if v})
        return validate_spec(spec)
    if kind == "reeval":
        first = adapters[0] if adapters else None
        quant = (m.get("recipe") or {}).get("quantization") if ro.get("method") == "qlora" else None
        spec.update(
            {
                "adapter": _manifest_path(root, "adapters", "path", first["path"], "adapter_config.json")
                if first
                else None,
                "eval_set": eval_set,
                "variant": ro.get("method", "lora") if first else "base",
                "quantization": quant,
            }
        )
        if not spec["eval_set"]:
            raise SpecError(f"{root}/rollout.toml: [eval] eval_set is missing; a reeval needs it")
        return validate_spec(spec)
    recipe = copy.deepcopy(base_recipe if base_recipe is not None else (m.get("recipe") or {}))
    if not recipe:
        raise SpecError(f"{root}/rollout.toml: no [recipe] table; a retrain needs the recorded recipe")
    data_tbl = m.get("data") or {}
    recipe["data"] = {k: data_tbl[k] for k in DATA_KEYS if k in data_tbl}
    try:
        new = apply_overrides(recipe, overrides)
    except RecipeError as exc:
        raise SpecError(f"overrides: {exc}") from None
    data = new.pop("data", {})
    # A 4-bit override (bnb_4bit_compute_dtype) on a 16-bit LoRA recipe has nothing to apply to: dropped.
    method = "qlora" if (new.get("quantization") or {}).get("load_in_4bit") else ro.get("method", "lora")
    if method == "lora":
        new.pop("quantization", None)
    if "learning_rate" in overrides:
        from doctor.jobs.lrbounds import bound_lr, method_family

        fix = bound_lr(recipe.get("learning_rate"), new.get("learning_rate"), method_family(method, new), new)
        new["learning_rate"] = fix.value
        spec["source"]["learning_rate"] = {"from": fix.recorded, "to": fix.value, "why": fix.why}
    old_data = recipe.get("data") or {}
    changes = recipe_changes({k: v for k, v in recipe.items() if k != "data"}, new)
    changes.update({f"data.{k}": [old_data.get(k), data.get(k)] for k in data if data.get(k) != old_data.get(k)})
    spec["source"]["changes"] = changes
    train = data.get("train")
    from_manifest = bool(train) and train == data_tbl.get("train")
    train_abs = _manifest_path(root, "data", "train", train, "file") if from_manifest else train
    spec.update(
        {
            "method": method,
            "recipe": new,
            "overrides": overrides,
            "data": {
                "train": train_abs,
                "train_slices": data.get("train_slices", "all"),
                **({"mix": data["mix"]} if data.get("mix") else {}),
            },
            "eval": {"eval_set": eval_set} if eval_set else {},
            "adapter_name": adapters[0]["name"] if adapters else DEFAULT_ADAPTER_NAME,
        }
    )
    if not train_abs:
        raise SpecError(f"{root}/rollout.toml: [data] train is missing; a retrain needs the training data")
    command = (m.get("training") or {}).get("command")
    if command:  # the rollout trains with its own command (TRL CLI, a script): doctor.jobs.external runs it
        spec["trainer"] = {"command": command, "cwd": str(root)}
    every = checkpoint_every(new)
    if every and not command:
        spec["save_steps"] = every
    return validate_spec(spec)


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [from, to]} for every recipe field an action changed (lora./quantization. fields dotted)."""
    out: dict[str, list[Any]] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            for sub, pair in recipe_changes(a or {}, b or {}).items():
                out[f"{key}.{sub}"] = pair
        elif a != b:
            out[key] = [a, b]
    return out


def checkpoint_every(recipe: dict[str, Any]) -> int | None:
    """Steps between Trainer checkpoints for a job doctor builds: at least ten per run, so a killed or
    cancelled job can `resume` without losing more than a tenth of it (the recipe's own save_steps when
    that is more often). None when the recipe sets no step count."""
    steps = recipe.get("max_steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        return None
    own = recipe.get("save_steps") if recipe.get("save_strategy", "steps") == "steps" else None
    if isinstance(own, float) and 0 < own < 1:  # HF: a share of the run
        own = max(1, int(own * steps))
    every = max(1, steps // 10)
    return min(every, own) if isinstance(own, int) and own >= 1 else every


def spec_from_triage(
    rollout_root: Path | str, settings: Any = None, answers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Triage the rollout and build the spec of the first job action of the top diagnosis.

    `answers` ({NODE or PLAYBOOK.NODE: CHOICE}) answer the triage's questions, as `doctor triage --answer`.
    """
    from doctor.core.settings import Settings
    from doctor.playbook.triage import run_triage

    root = Path(rollout_root).resolve()
    results = run_triage([root], settings or Settings(), answers or None)
    for rt in results:
        for a in rt.triage.actions:
            if a.get("kind") == "job" and a.get("job"):
                spec = spec_from_action(rt.root, a["job"])
                spec["source"] = {
                    **spec.get("source", {}),
                    "triage": rt.triage.leaf,
                    "action": a["job"],
                    "text": a.get("text", ""),
                }
                if answers:
                    spec["source"]["answers"] = dict(answers)
                return spec
    leaf = results[0].triage.leaf if results else "?"
    msg = f"triage of {root} ended at {leaf!r} with no job action; nothing to run"
    open_qs = [s for rt in results for s in rt.triage.path if s.how == "pending"]
    if open_qs:
        q = open_qs[0]
        choices = "|".join(q.choices) if q.choices else "CHOICE"
        msg += f" (unanswered: {q.node} — {q.question}; answer it with --answer {q.node}={choices})"
    raise SpecError(msg)
