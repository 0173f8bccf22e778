"""One pass over an adapter folder: config, safetensors header, then every tensor once (mmap, numpy)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from probes.adapter.stats import ModuleNumbers, factor_stats, module_numbers, non_finite_count
from probes.common.peft.config import AdapterConfig, SavedModule, group_keys, key_suffix, read_config
from probes.common.peft.tuners import Tuner, tuner_for
from probes.common.safetensors_io import (
    F16_NONFINITE_AT,
    FLOAT_DTYPES,
    TensorInfo,
    TensorReader,
    Unreadable,
    read_header,
    sha256_file,
)

if TYPE_CHECKING:
    from probes.adapter.base_view import BaseView
    from probes.adapter.compat import Resolved

WEIGHT_NAMES = ("adapter_model.safetensors",)
PICKLE_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")


@dataclass
class Problem:
    """A file-integrity problem (→ ADP001)."""

    file: Path
    reason: str
    where: str = ""


@dataclass
class Scan:
    """Everything one pass read from an adapter folder; with `base_view` set, the subject of every ADP check."""

    folder: Path
    given: Path | None = None  # the path the scan was asked for (the artifact's: the folder or a file in it)
    config_path: Path | None = None
    config: AdapterConfig | None = None
    weights: Path | None = None
    pickles: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    modules: dict[str, SavedModule] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    numbers: dict[str, ModuleNumbers] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)  # tensor key → count
    shape_issues: list[tuple[str, str]] = field(default_factory=list)  # (module, message)
    magnitudes: dict[str, tuple[float, int]] = field(default_factory=dict)  # key → (min, count ≤ 0)
    size_bytes: int = 0
    sha256: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    resolved: Resolved | None = None  # saved modules → base modules, once the base is known (plan_base)
    experts: dict[str, int] = field(default_factory=dict)  # saved module path → experts (MoE ParamWrapper)
    base: tuple[Path, str, dict[str, Any]] | None = None  # (config.json, how it was found, parsed) when found
    base_view: BaseView | None = None  # the base the checks compare with (set by the probe)

    @property
    def tuner(self) -> Tuner:
        """The PEFT tuner the config names (LoRA when there is no config)."""
        return self.config.tuner if self.config is not None else tuner_for(None)

    def scale(self, module: str) -> float:
        t = self.resolved.targets.get(module) if self.resolved is not None else None
        if t is not None:
            return t.scale
        s = self.config.scale_for(module) if self.config else None
        return 1.0 if s is None else s

    def label(self, m: SavedModule) -> str:
        """The module's name for people: the base parameter a MoE wrapper adapts (gate_up_proj), else the
        last path segment (q_proj)."""
        t = self.resolved.targets.get(m.path) if self.resolved is not None else None
        return t.spec.name if t is not None else m.target

    def rank_of(self, m: SavedModule) -> int | None:
        """LoRA rank of one saved module: lora_A rows, divided by the experts a MoE wrapper stacks."""
        key = m.tensors.get("A") or m.tensors.get("emb_A")
        if not key or not self.tensors[key].shape:
            return None
        rows = self.tensors[key].shape[0]
        e = self.experts.get(m.path, 1)
        return rows // e if e > 1 and rows % e == 0 else rows


def find_files(folder: Path) -> tuple[Path | None, Path | None, list[Path]]:
    """(adapter_config.json, adapter_model.safetensors, pickles) in the folder."""
    cfg = folder / "adapter_config.json"
    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    pickles = [folder / n for n in PICKLE_NAMES if (folder / n).is_file()]
    return (cfg if cfg.is_file() else None), weights, pickles


def scan_adapter(
    folder: Path,
    *,
    want_sha256: bool | None = None,
    cancelled: Callable[[], bool] | None = None,
    plan: Callable[[Scan], None] | None = None,
) -> Scan:
    """Read everything doctor checks. `want_sha256`: True/False, or None = only for files ≤ 64 MiB.
    `plan(scan)` runs after the header is read and before the tensors are: it may set `scan.experts`
    (saved module path → experts stacked in its factors) so MoE parameter wrappers get per-expert numbers."""
    given, folder = folder, (folder if folder.is_dir() else folder.parent)
    t0 = time.perf_counter()
    cfg_path, weights, pickles = find_files(folder)
    sc = Scan(folder=folder, given=given, config_path=cfg_path, weights=weights, pickles=pickles)
    if cfg_path is None:
        sc.problems.append(Problem(folder, "adapter_config.json is missing: PEFT cannot load this adapter"))
    else:
        try:
            sc.config = read_config(cfg_path)
        except json.JSONDecodeError as exc:
            sc.problems.append(Problem(cfg_path, f"invalid JSON: {exc.msg}", f"line {exc.lineno} column {exc.colno}"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            sc.problems.append(Problem(cfg_path, str(exc)))
    if weights is None and not pickles:
        sc.problems.append(Problem(folder, "no adapter_model.safetensors (or .bin) next to adapter_config.json"))
    if weights is not None:
        try:
            sc.tensors, sc.metadata, sc.size_bytes = read_header(weights)
        except Unreadable as exc:
            sc.problems.append(Problem(weights, exc.reason, exc.where))
            sc.size_bytes = weights.stat().st_size
        else:
            sc.modules, sc.other = group_keys(list(sc.tensors))
            sc.seconds["header"] = time.perf_counter() - t0
            if plan is not None:
                plan(sc)
            _scan_tensors(sc, cancelled)
        t1 = time.perf_counter()
        if want_sha256 or (want_sha256 is None and sc.size_bytes <= 64 << 20):
            sc.sha256 = sha256_file(weights)
            sc.seconds["sha256"] = time.perf_counter() - t1
    sc.seconds["total"] = time.perf_counter() - t0
    sc.facts = build_facts(sc)
    return sc


_FACTOR_ROLES = ("A", "B", "emb_A", "emb_B")


@dataclass
class _ModuleResult:
    """What one module's task found; merged into the Scan by the main thread, in file order."""

    non_finite: dict[str, int] = field(default_factory=dict)
    shape_issues: list[str] = field(default_factory=list)
    magnitudes: dict[str, tuple[float, int]] = field(default_factory=dict)
    numbers: ModuleNumbers | None = None


def _scan_module(sc: Scan, rd: TensorReader, m: SavedModule) -> _ModuleResult:
    """Everything about one module: non-finite counts, the Gram matrices of lora_A/lora_B and, from them,
    the update's norm and singular values. Runs on a pool thread: the heavy parts (fp16/bf16 → fp32,
    the r×r SYRK, LAPACK) release the GIL."""
    tensors, res = sc.tensors, _ModuleResult()
    a_key = m.tensors.get("A") or m.tensors.get("emb_A")
    b_key = m.tensors.get("B") or m.tensors.get("emb_B")
    grams: dict[bool, np.ndarray] = {}
    for key, rank_rows in ((a_key, True), (b_key, False)):
        if key is None:
            continue
        t = tensors[key]
        if t.dtype not in FLOAT_DTYPES or len(t.shape) != 2:
            res.shape_issues.append(f"{key}: {t.dtype} {list(t.shape)} is not a 2-D float matrix")
            continue
        fs = factor_stats(rd.f32(t, exact=False), rank_rows)
        # trace(Gram) = Σx²: below 65536² no element can be a float16 Inf/NaN in disguise; else read exactly.
        if t.dtype == "F16" and not (fs.gram is not None and np.trace(fs.gram) < F16_NONFINITE_AT**2 / 2):
            fs = factor_stats(rd.f32(t), rank_rows)
        rd.release(t)
        if fs.non_finite:
            res.non_finite[key] = fs.non_finite
        if fs.gram is not None:
            grams[rank_rows] = fs.gram
    e_vec: np.ndarray | None = None
    for role, key in m.tensors.items():
        if role in _FACTOR_ROLES or tensors[key].dtype not in FLOAT_DTYPES:
            continue
        x = rd.f32(tensors[key])
        if role == "E" and x.size == (grams[True].shape[0] if True in grams else -1):
            e_vec = x.astype(np.float64).reshape(-1).copy()
        bad = non_finite_count(x)
        if bad:
            res.non_finite[key] = bad
        if role == "magnitude" and x.size:
            fin = x[np.isfinite(x)]
            res.magnitudes[key] = (float(fin.min()) if fin.size else float("nan"), int(np.sum(fin <= 0)))
        del x
        rd.release(tensors[key])
    if a_key and b_key:
        ta, tb = tensors[a_key], tensors[b_key]
        if len(ta.shape) == 2 and len(tb.shape) == 2 and ta.shape[0] != tb.shape[1]:
            res.shape_issues.append(
                f"lora_A has rank {ta.shape[0]} ({list(ta.shape)}) but lora_B has {tb.shape[1]} ({list(tb.shape)})"
            )
        elif True in grams and False in grams:
            if e_vec is not None and np.all(np.isfinite(e_vec)):  # AdaLoRA: ΔW = B·diag(E)·A
                grams[True] = grams[True] * np.outer(e_vec, e_vec)
            res.numbers = module_numbers(grams[True], grams[False], sc.scale(m.path), sc.experts.get(m.path, 1))
    return res


def _scan_tensors(sc: Scan, cancelled: Callable[[], bool] | None) -> None:
    """Every module on all cores (about 1.5x on 2 cores for a 7B-shaped adapter). Only `workers` modules are
    expanded to fp32 at once, so memory stays bounded; each task keeps just its r×r results."""
    t0 = time.perf_counter()
    tensors = sc.tensors
    # Visit modules in file order so the mmap is read front to back.
    order = sorted(sc.modules.values(), key=lambda m: min(tensors[k].start for k in m.tensors.values()))
    with TensorReader(sc.weights, sc.size_bytes) as rd:

        def task(m: SavedModule) -> _ModuleResult | None:
            return None if cancelled is not None and cancelled() else _scan_module(sc, rd, m)

        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for m, res in zip(order, pool.map(task, order)):
                if res is None:
                    continue
                sc.non_finite.update(res.non_finite)
                sc.magnitudes.update(res.magnitudes)
                sc.shape_issues.extend((m.path, msg) for msg in res.shape_issues)
                if res.numbers is not None:
                    sc.numbers[m.path] = res.numbers
        for key in sc.other:
            t = tensors[key]
            if t.dtype in FLOAT_DTYPES and t.numel:
                bad = non_finite_count(rd.f32(t))
                rd.release(t)
                if bad:
                    sc.non_finite[key] = bad
    sc.seconds["tensors"] = time.perf_counter() - t0


def build_facts(sc: Scan) -> dict[str, Any]:
    """The normalized facts (documented in probes/adapter/__init__.py)."""
    cfg = sc.config
    raw = cfg.raw if cfg else {}
    f: dict[str, Any] = {
        "format": "safetensors" if sc.weights else ("pickle" if sc.pickles else "none"),
        "adapter_name": sc.folder.name,
        "weights_file": sc.weights.name if sc.weights else (sc.pickles[0].name if sc.pickles else None),
        "pickle_files": [p.name for p in sc.pickles],
        "readable": not sc.problems,
        "peft_type": raw.get("peft_type"),
        "peft_version": raw.get("peft_version"),
        "min_peft_version": cfg.min_peft_version() if cfg else None,
        "task_type": raw.get("task_type"),
        "base_model_name_or_path": raw.get("base_model_name_or_path"),
        "r": cfg.r if cfg else None,
        "alpha": cfg.alpha if cfg else None,
        "use_rslora": cfg.use_rslora if cfg else False,
        "scale": (cfg.scale_for("") if cfg else None),
        "rank_pattern": cfg.rank_pattern if cfg else {},
        "alpha_pattern": cfg.alpha_pattern if cfg else {},
        "use_dora": cfg.use_dora if cfg else False,
        "bias": raw.get("bias", "none"),
        "lora_bias": bool(raw.get("lora_bias") or False),
        "modules_to_save": cfg.modules_to_save if cfg else [],
        "init_lora_weights": raw.get("init_lora_weights", True),
        "layers_to_transform": cfg.layers_to_transform if cfg else None,
        "target_modules": cfg.target_modules if cfg else None,
        "size_bytes": sc.size_bytes,
        "sha256": sc.sha256,
    }
    ranks = [r for r in (sc.rank_of(m) for m in sc.modules.values()) if r is not None]
    cfg_ranks = ([cfg.r] if cfg and cfg.r else []) + (list(cfg.rank_pattern.values()) if cfg else [])
    f["max_rank"] = max(cfg_ranks + ranks) if (cfg_ranks or ranks) else None
    f["weight_ranks"] = sorted(set(ranks))
    by_bytes: dict[str, int] = {}
    for t in sc.tensors.values():
        by_bytes[t.dtype] = by_bytes.get(t.dtype, 0) + t.nbytes
    f["dtypes"] = by_bytes
    f["dtype"] = max(by_bytes, key=by_bytes.get) if by_bytes else None
    f["tensor_count"] = len(sc.tensors)
    f["trainable_params"] = sum(t.numel for t in sc.tensors.values())
    f["key_suffixes"] = sorted({key_suffix(k) for k in sc.tensors})
    f["targets"] = sorted({sc.label(m) for m in sc.modules.values()})
    f["lora_modules"] = len(sc.modules)
    f["layers_with_weights"] = sorted({m.layer for m in sc.modules.values() if m.layer is not None})
    dims: dict[str, dict[str, int]] = {}
    vocab: dict[str, int] = {}
    for m in sc.modules.values():
        a, b = m.tensors.get("A"), m.tensors.get("B")
        if a and b and len(sc.tensors[a].shape) == 2 and len(sc.tensors[b].shape) == 2:
            dims.setdefault(sc.label(m), {"in": sc.tensors[a].shape[1], "out": sc.tensors[b].shape[0]})
        ea, eb = m.tensors.get("emb_A"), m.tensors.get("emb_B")
        if ea and len(sc.tensors[ea].shape) == 2:
            vocab["lora_embedding_A"] = sc.tensors[ea].shape[1]
        if eb and len(sc.tensors[eb].shape) == 2:
            dims.setdefault(sc.label(m), {"in": sc.tensors[ea].shape[1] if ea else 0, "out": sc.tensors[eb].shape[0]})
    for key in sc.other:
        shape = sc.tensors[key].shape
        if len(shape) == 2 and (
            key.endswith(("embed_tokens.weight", "lm_head.weight", "wte.weight")) or "embed" in key
        ):
            vocab[key] = shape[0]
    f["tensor_dims"] = dims
    f["vocab_dims"] = vocab
    f["saved_other_keys"] = sorted(sc.other)[:50]
    f["has_magnitudes"] = any("magnitude" in m.tensors for m in sc.modules.values())
    f["dora_magnitudes"] = sum(1 for m in sc.modules.values() if "magnitude" in m.tensors)
    # bias = "all" / "lora_only" saves the base's biases beside the LoRA factors; lora_bias adds lora_B.bias
    f["bias_tensors"] = sum(1 for k in sc.other if k.endswith(".bias"))
    f["lora_bias_tensors"] = sum(1 for m in sc.modules.values() if "bias_B" in m.tensors)
    f["peft_tuner"] = cfg.tuner.label if cfg else None
    if cfg is not None and cfg.tuner.label == "AdaLoRA":
        masks = cfg.rank_masks
        f["adalora"] = {
            "init_r": cfg.r,
            "target_r": raw.get("target_r"),
            "rank_masks": len(masks),
            "kept_ranks": sorted(set(masks.values())),
            "mean_kept_rank": round(sum(masks.values()) / len(masks), 3) if masks else None,
            "pruned_modules": sum(1 for v in masks.values() if v == 0),
        }
    f["non_finite_tensors"] = len(sc.non_finite)
    f["non_finite_values"] = sum(sc.non_finite.values())
    rows = []
    for m in sorted(sc.modules.values(), key=lambda m: (m.layer if m.layer is not None else -1, m.path)):
        n = sc.numbers.get(m.path)
        r_here = sc.rank_of(m)
        rows.append(
            {
                "module": sc.label(m),
                "layer": m.layer,
                "path": m.path,
                "r": r_here,
                "update_norm": round(n.update_norm, 6) if n else None,
                "effective_rank": round(n.effective_rank, 3) if n else None,
                "rank90": n.rank90 if n else None,
            }
        )
    f["layers"] = rows
    f["scan_seconds"] = {k: round(v, 4) for k, v in sc.seconds.items()}
    return f
