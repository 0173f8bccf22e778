"""Find the artifacts under a target by name and a peek at content (never a full parse).

Each artifact belongs to a rollout: the nearest folder at or above it (within the target) that holds
a `rollout.toml` manifest, else the target itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from doctor.core.model import Artifact
from doctor.core.safeio import loads_json, read_text_capped

MANIFEST_NAME = "rollout.toml"
SKIP_DIRS = {".git", ".doctor", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache", ".ruff_cache"}
_CHECKPOINT = re.compile(r"^checkpoint-\d+$")
_PEEK = 16384
_RUN_ARGS = ("training_args.json", "training_args.bin")
_RUN_FILES = {"trainer_state.json", *_RUN_ARGS}

_SERVING_WORDS = re.compile(
    r"vllm\s+serve|vllm\.entrypoints|--enable-lora|enable-lora|text-generation-launcher|lorax-launcher|"
    r"LORA_ADAPTERS|--lora-adapters|--lora-modules|ghcr\.io/huggingface/text-generation-inference|"
    r"vllm/vllm-openai|predibase/lorax|ghcr\.io/predibase/lorax|"
    r"^\s*(?:enable[-_]lora|lora[-_]modules|max[-_]lora[-_]rank)\s*:|"  # `vllm serve --config` YAML keys
    r"sglang\.launch_server|lmsysorg/sglang|--lora-paths|kubeai\.org/|servingEngineSpec|litellm_params",
    re.M,
)
# A Python file is a launcher only when an engine entry point sits in a string literal of an argument list.
_PY_LAUNCHER = re.compile(
    r"""["'](?:sglang\.launch_server|vllm\.entrypoints\.openai\.api_server)["']|["']vllm["']\s*,\s*["']serve["']|"""
    r"""\bServerArgs\(\s*model_path\s*=|"""
    r"""\b(?:system|run|Popen|call|check_call|check_output)\(\s*f?["'][^"'\n]*"""
    r"""(?:vllm\s+serve|sglang\.launch_server|vllm\.entrypoints)"""
)
_COMPOSE_NAME = re.compile(r"^(?:docker-)?compose[\w.-]*\.ya?ml$")
_BUILD_DOCKERFILE = re.compile(r"^\s*(?:dockerfile|build)\s*:\s*['\"]?([\w./-]+)", re.M)


def _compose_builds_server(path: Path, text: str) -> bool:
    """A compose file whose services are built from a Dockerfile that launches an engine (name + peek)."""
    for value in _BUILD_DOCKERFILE.findall(text):
        if ".." in Path(value).parts or Path(value).is_absolute():
            continue  # a peek never leaves the compose file's folder (the probe follows it only inside the target)
        for cand in (path.parent / value, path.parent / value / "Dockerfile"):
            if cand.is_file() and _SERVING_WORDS.search(_peek(cand)):
                return True
    return False


_TRAIN_CFG_KEYS = re.compile(
    r"^(base_model|model_name_or_path|adapter|finetuning_type|lora_r|lora_rank|learning_rate|"
    r"micro_batch_size|num_epochs|stage|load_in_4bit|quantization_bit)\s*:",
    re.M,
)


# an eval metric (not only timing) in a Trainer metrics dict: "eval_loss", "predict_bleu-4", …
_EVAL_METRIC_KEY = re.compile(
    r'"(?:eval|predict|test)_(?!runtime"|samples_per_second"|steps_per_second"|samples"|model_preparation_time")'
    r'[\w@.\-]+"\s*:\s*-?[\d.]'
)


# eval outputs doctor scores or reads per item (see probes/eval_slices/readers/)
_JUDGE_COLS = {"judge", "judgment", "judgement", "judge_model", "feedback", "rationale", "critique"}
_PRED_COLS = {"prediction", "predicted", "pred", "model_output", "model_answer", "generated", "completion", "output"}
_TARGET_COLS = {"target", "reference", "gold", "gold_answer", "answer", "label", "expected", "ground_truth"}
_SUMMARY_NAME = re.compile(r'"(?:model|adapter|variant|run|model_name)"\s*:\s*"')
_SUMMARY_METRICS = re.compile(r'"metrics"\s*:\s*\{')


def _peek(path: Path, size: int = _PEEK) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _first_line(path: Path) -> str:
    text = _peek(path, 4096)
    return text.split("\n", 1)[0].strip()


def _columns_of_table(path: Path) -> set[str]:
    """Column names of a CSV header or the first JSONL object (lowercased)."""
    line = _first_line(path)
    if path.suffix == ".csv" or path.suffix == ".tsv":
        sep = "\t" if path.suffix == ".tsv" else ","
        return {c.strip().strip('"').lower() for c in line.split(sep)}
    try:
        obj = loads_json(line)
    except ValueError:
        return set()
    return {str(k).lower() for k in obj} if isinstance(obj, dict) else set()


def _parquet_columns(path: Path) -> set[str]:
    try:
        import pyarrow.parquet as pq  # only when a parquet file is actually present

        return {n.lower() for n in pq.read_schema(path).names}
    except Exception:
        return set()


def classify_file(path: Path) -> str | None:
    name = path.name
    low = name.lower()
    if name == "trainer_state.json" or name == "trainer_log.jsonl" or low.startswith("events.out.tfevents"):
        return "training_log"
    if name == MANIFEST_NAME:
        return "manifest"
    if name in ("training_args.json", "training_args.bin"):
        return "training_config"
    if name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        return None  # handled as part of the adapter folder
    if low.endswith((".yaml", ".yml")):
        text = _peek(path)
        if "peft-doctor/registry" in text or (low.startswith("registry") and "adapters:" in text):
            return "registry"
        if _SERVING_WORDS.search(text):
            return "serving_config"
        if _COMPOSE_NAME.match(low) and _compose_builds_server(path, text):
            return "serving_config"
        if _TRAIN_CFG_KEYS.search(text):
            return "training_config"
        return None
    if low.endswith(".sh") or low == "dockerfile" or low.startswith("dockerfile.") or low.endswith(".dockerfile"):
        return "serving_config" if _SERVING_WORDS.search(_peek(path)) else None
    if low in ("makefile", "gnumakefile") or low.endswith(".mk"):
        return "serving_config" if _SERVING_WORDS.search(_peek(path)) else None
    if low.endswith(".py"):
        return "serving_config" if _PY_LAUNCHER.search(_peek(path)) else None
    if low == "generated_predictions.jsonl" and '"predict"' in _peek(path, 4096):
        return "eval_table"  # LLaMA-Factory do_predict output: prompt / predict / label per line
    if low.endswith((".csv", ".tsv", ".jsonl", ".parquet")):
        if low.startswith("samples_") and low.endswith(".jsonl") and '"doc_id"' in _peek(path, 4096):
            return "eval_table"  # lm-evaluation-harness per-sample output (first line may exceed the peek)
        cols = _parquet_columns(path) if low.endswith(".parquet") else _columns_of_table(path)
        if "slice" in cols and ({"score", "correct", "acc", "exact_match"} & cols):
            return "eval_table"
        if {"doc_id", "filter"} <= cols or ("doc_id" in cols and "target" in cols):
            return "eval_table"  # lm-evaluation-harness per-sample output
        if (_JUDGE_COLS & cols) and ({"score", "scores", "rating", "ratings", "rubric"} & cols):
            return "eval_table"  # per-item LLM-judge output (MT-Bench judgments, rubric scores)
        if (_PRED_COLS & cols) and (_TARGET_COLS & cols) and not ({"score", "correct", "acc", "exact_match"} & cols):
            return "eval_table"  # per-example predictions with targets and no score: doctor scores them
        if "slice" in cols and ({"prompt", "instruction", "input", "question"} & cols):
            return "eval_set"
        if ({"loss", "train/loss", "train_loss"} & cols) and ({"step", "current_steps", "global_step", "_step"} & cols):
            return "training_log"
        return None
    if low.endswith(".json") and low.startswith("results"):
        text = _peek(path, 4096)
        if '"results"' in text and ('"config"' in text or '"versions"' in text):
            return "eval_table"  # lm-evaluation-harness results JSON
    if low.endswith(".json") and not low.startswith(("config", "adapter_config", "tokenizer", "generation_config")):
        text = _peek(path)
        if _SUMMARY_METRICS.search(text) and _SUMMARY_NAME.search(text):
            return "eval_table"  # a summary of eval runs: model/adapter names with metrics dicts
    trainer_metrics = ("all_results.json", "eval_results.json", "predict_results.json", "test_results.json")
    if low in trainer_metrics and _EVAL_METRIC_KEY.search(_peek(path, 4096)):
        return "eval_table"  # HF Trainer / LLaMA-Factory metrics with eval_* / predict_* scores
    return None


def classify_dir(path: Path) -> str | None:
    names = set()
    try:
        names = {e.name for e in os.scandir(path)}
    except OSError:
        return None
    if "adapter_config.json" in names or "adapter_model.safetensors" in names or "adapter_model.bin" in names:
        return "adapter"
    if "config.json" in names and ({"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"} & names):
        try:
            cfg = loads_json(read_text_capped(path / "config.json", 1_000_000))
        except (OSError, ValueError):
            return "base_model"
        if isinstance(cfg, dict) and "architectures" in cfg:
            return "base_model"
    if path.name == "mlruns" or ("meta.yaml" in names and "metrics" in names):
        return "training_log"
    if path.name.startswith(("offline-run-", "run-")) and path.parent.name == "wandb":
        return "training_log"
    return None


def discover(target: Path) -> list[Artifact]:
    """All artifacts under target (a file or a folder), each with its rollout folder."""
    target = target.resolve() if target.exists() else target
    found: list[Artifact] = []
    if target.is_file():
        kind = classify_file(target)
        manifest = _manifest_above(target.parent)
        if manifest and kind != "manifest":
            declared = {_resolved(p): k for p, k in declared_files(manifest)}
            kind = declared.get(target, kind)
        if kind is None and target.name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            kind, target = "adapter", target.parent
        if kind:
            found.append(Artifact(target, kind))
        root = target.parent
    else:
        root = target
        found.extend(_walk(target, top=True))
        _apply_declared_kinds(found, root)
    _assign_rollouts(found, root)
    return found


def _manifest_above(folder: Path) -> Path | None:
    """The nearest rollout.toml at or above `folder`."""
    for d in (folder, *folder.parents):
        if (d / MANIFEST_NAME).is_file():
            return d / MANIFEST_NAME
    return None


def declared_files(manifest: Path) -> list[tuple[Path, str]]:
    """(file, kind) for the files a rollout manifest names as eval tables, serving configs and registry.
    Empty when the manifest cannot be read (its own probe reports that)."""
    from doctor.core.manifest import read_manifest, resolve
    from doctor.core.probe import ReadError

    try:
        data = read_manifest(manifest)
    except (ReadError, ValueError, TypeError, OSError):  # bad bytes, wrong types: its own probe says what
        return []
    ev, srv = data.get("eval") or {}, data.get("serving") or {}
    if not isinstance(ev, dict) or not isinstance(srv, dict):
        return []

    def paths(value: object) -> list[str]:
        items = value if isinstance(value, list) else [value]
        return [v for v in items if isinstance(v, str) and v]

    named = [(v, "eval_table") for v in paths(ev.get("baseline")) + paths(ev.get("candidates"))]
    named += [(v, "serving_config") for v in paths(srv.get("configs"))]
    named += [(v, "registry") for v in paths(srv.get("registry"))]
    out = []
    for value, kind in named:
        p = resolve(manifest.parent, value)
        if p is not None and "\0" not in value:
            # Normalised, not resolved: a symlink is matched where it sits, as the folder walk sees it.
            out.append((Path(os.path.normpath(p)), kind))
    return out


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return p


def _apply_declared_kinds(found: list[Artifact], root: Path) -> None:
    """A file the manifest names is read as what the manifest says it is, even when its content does not
    look the part: a damaged eval table or a serving config that breaks on line 1 must be reported, not
    skipped (a CI gate would pass on it). Only files under the target are added."""
    by_path = {a.path: a for a in found}
    manifests = {a.path for a in found if a.kind == "manifest"}
    above = _manifest_above(root)  # a target inside a rollout (e.g. its eval/ folder)
    if above is not None:
        manifests.add(above)
    for manifest in sorted(manifests):
        for path, kind in declared_files(manifest):
            try:
                if not path.is_file() or (root not in path.parents):
                    continue
            except OSError:  # a name the file system refuses (too long): the manifest's probe says so
                continue
            art = by_path.get(path)
            if art is None:
                art = Artifact(path, kind)
                found.append(art)
                by_path[path] = art
            elif art.kind not in (kind, "manifest"):  # a manifest listing itself stays a manifest
                art.kind = kind


def _walk(folder: Path, top: bool = False, in_run: bool = False) -> Iterator[Artifact]:
    kind = classify_dir(folder)
    if kind is not None:
        yield Artifact(folder, kind)
        if kind != "adapter":
            return  # base models, mlruns and wandb runs are read as one unit
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    checkpoints = []
    for entry in entries:
        if entry.name in SKIP_DIRS or (entry.name.startswith(".") and entry.is_dir()):
            continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if _CHECKPOINT.match(entry.name):
                checkpoints.append(p)  # intermediate checkpoints: read through the run's log
                if not top:
                    continue
            if kind == "adapter":
                continue
            yield from _walk(p, in_run=bool(_CHECKPOINT.match(entry.name)))
        elif entry.is_file() and (kind != "adapter" or entry.name in _RUN_FILES or entry.name == MANIFEST_NAME):
            # An adapter folder that is also a Trainer/TRL output (save_model into output_dir) keeps its run
            # files and its manifest (doctor init writes one there).
            if in_run and entry.name in _RUN_FILES:
                continue  # the parent run folder yields the newest checkpoint's state and arguments
            k = classify_file(p)
            if k:
                yield Artifact(p, k)
    if checkpoints and (kind is None or (kind == "adapter" and top)):
        yield from _run_from_checkpoints(folder, checkpoints)


def _run_from_checkpoints(folder: Path, checkpoints: list[Path]) -> Iterator[Artifact]:
    """A plain HF Trainer / TRL output folder (checkpoint-N/ with trainer_state.json, training_args.bin,
    adapter files, no manifest): the newest checkpoint's state and arguments stand for the run where the
    folder has none of its own (Trainer writes them top-level only after save_state / save_model)."""
    newest = max(checkpoints, key=lambda p: int(p.name.split("-")[1]))
    own = folder == newest
    if (own or not (folder / "trainer_state.json").exists()) and (newest / "trainer_state.json").is_file():
        yield Artifact(newest / "trainer_state.json", "training_log")
    if not own and any((folder / n).exists() for n in _RUN_ARGS):
        return
    for name in _RUN_ARGS:
        if (newest / name).is_file():
            yield Artifact(newest / name, "training_config")
            return


def _assign_rollouts(artifacts: list[Artifact], root: Path) -> None:
    cache: dict[Path, Path] = {}

    def rollout_of(p: Path) -> Path:
        start = p if p.is_dir() else p.parent
        d = start
        chain = []
        while True:
            if d in cache:
                found = cache[d]
                break
            chain.append(d)
            if (d / MANIFEST_NAME).is_file():
                found = d
                break
            if d == root or d.parent == d or root not in d.parents:
                found = root
                break
            d = d.parent
        for c in chain:
            cache[c] = found
        return found

    for a in artifacts:
        a.rollout = rollout_of(a.path)
