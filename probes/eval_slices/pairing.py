"""Which eval file is the baseline and which the candidate, when the files do not say it.

In order: a variant column in the file (kept as is); the rollout manifest ([eval] baseline file or
baseline_variant, handled by the probe); lm-eval `config.model_args` (a run with `peft=` is a candidate
named after its adapter, a run of the same `pretrained` without it the baseline); folder and file names
(`base/` vs `lora/`, `…-base` vs `…-lora`, `base.csv` vs `lora.csv`). Files of one run (the same
folder, or an lm-eval results file and the samples files with its timestamp) share a name. Two
baseline-looking names, or none among several variants, is ambiguous: a finding asks for the manifest
entry, and nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from probes.eval_slices.evaltable import EvalTable

BASE_WORDS = {
    "base",
    "baseline",
    "prompt_only",
    "prompt-only",
    "base_model",
    "no_adapter",
    "noadapter",
    "vanilla",
    "zeroshot",
}
# Names that say nothing about the variant: the tool's own file and folder names.
GENERIC = {
    "all_results",
    "eval_results",
    "predict_results",
    "test_results",
    "generated_predictions",
    "predictions",
    "preds",
    "results",
    "eval",
    "evals",
    "evaluation",
    "outputs",
    "output",
    "scores",
    "judgments",
    "judgements",
    "judge",
    "lm_eval",
    "lm-eval",
    "lm_eval_results",
    "samples",
    "summary",
    "metrics",
}
_TS = re.compile(r"_?\d{4}-\d{2}-\d{2}T[\d\-.:]+$")
_SPLIT = re.compile(r"[-_./\s]+")


@dataclass
class Plan:
    tables: list[EvalTable]  # renamed copies (arrays shared) in input order
    baseline: str | None = None
    how: str = ""
    ambiguous: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def is_base_name(name: str) -> bool:
    low = name.lower()
    if low in BASE_WORDS:
        return True
    toks = _SPLIT.split(low)
    return any(t in ("base", "baseline", "vanilla") for t in toks) or "no_adapter" in low or "prompt_only" in low


def _stem(path: Path) -> str:
    stem = path.name.split(".", 1)[0] if path.suffix else path.name
    return _TS.sub("", stem)


def _folder_label(path: Path, root: Path) -> tuple[str, Path]:
    """The nearest informative folder name (and that folder) at or above the file, within the root."""
    d = path.parent
    while True:
        if d.name.lower() not in GENERIC or d == root or root not in d.parents:
            return d.name, d
        d = d.parent


def _label(t: EvalTable, root: Path) -> tuple[str, str]:
    """(name, source) for a file-named table."""
    stem = _stem(t.path)
    if t.fmt != "lm_eval_samples" and stem.lower() not in GENERIC and not stem.lower().startswith("samples"):
        return stem, "file names"
    name, _ = _folder_label(t.path, root)
    return name, "folder names"


def plan(tables: list[EvalTable], root: Path, fixed: set[int] | None = None) -> Plan:
    """Name every file-named table; `fixed` holds id()s of tables already named (manifest baseline)."""
    fixed = fixed or set()
    free = [t for t in tables if t.named_from == "file" and id(t) not in fixed]
    names: dict[int, str] = {}
    how: set[str] = set()
    # lm-eval runs: model_args decide, and samples files inherit their results file's name.
    runs = [t for t in free if t.fmt == "lm_eval_results"]
    hint_base: set[str] = set()
    peft_pretrained = {str(t.hint.get("pretrained")) for t in runs if t.hint.get("peft")}
    by_link: dict[tuple[Path, str], str] = {}
    for t in tables:  # files of a run the manifest named share its name
        if (id(t) in fixed or t.named_from == "manifest") and t.link and t.variant_codes is None:
            by_link[(t.path.parent, t.link)] = t.variants[0]
    for t in runs:
        peft, pre = t.hint.get("peft"), t.hint.get("pretrained")
        if peft:
            name = Path(str(peft).rstrip("/")).name or "peft"
        elif pre and str(pre) in peft_pretrained:
            name = "base"
            hint_base.add(name)
        else:
            continue
        names[id(t)] = name
        how.add("lm-eval model_args (peft=)")
        if t.link:
            by_link[(t.path.parent, t.link)] = name
    for t in free:
        if id(t) in names:
            continue
        linked = by_link.get((t.path.parent, t.link)) if t.link else None
        if linked is not None:
            names[id(t)] = linked
            continue
        name, src = _label(t, root)
        names[id(t)] = name
        how.add(src)
    # The same name from different folders (runs/a/base, runs/b/base): qualify with the folder above.
    folders: dict[str, set[Path]] = {}
    for t in free:
        if id(t) not in names or names[id(t)] in hint_base:
            continue
        folders.setdefault(names[id(t)], set()).add(_folder_label(t.path, root)[1])
    for name, dirs in folders.items():
        if len(dirs) > 1 and all(d != root for d in dirs):
            for t in free:
                if names.get(id(t)) == name:
                    d = _folder_label(t.path, root)[1]
                    names[id(t)] = f"{d.parent.name}/{d.name}"
    out = [replace(t, variants=[names[id(t)]]) if id(t) in names and t.variant_codes is None else t for t in tables]
    p = Plan(out, how=", ".join(sorted(how)) or "variant column")
    all_names = sorted({v for t in out for v in t.variants})
    bases = [n for n in all_names if is_base_name(n)]
    p.evidence = {"variants": all_names, "baseline_like": bases, "by": p.how}
    if len(bases) == 1:
        p.baseline = bases[0]
    elif len(bases) > 1:
        p.ambiguous = f"several variants look like the baseline ({', '.join(bases)})"
    elif len(all_names) > 1:
        p.ambiguous = f"no variant looks like the baseline among {', '.join(all_names)}"
    return p
