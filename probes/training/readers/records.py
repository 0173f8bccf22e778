"""Turn a list of logged dicts (HF log_history, JSONL lines, printed log dicts) into a Series.

Vectorized: one list comprehension + one numpy conversion per column; a per-value Python loop only runs
for a column that holds something other than plain numbers (None, strings, missing keys).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from probes.training import trainers
from probes.training.series import Series, eval_arrays, from_columns

# field -> accepted key names, in order of preference
ALIASES: dict[str, tuple[str, ...]] = {
    "step": ("step", "global_step", "current_steps", "_step", "iteration", "iter", "train/global_step"),
    "loss": ("loss", "train/loss", "train_loss", "training_loss", "loss/train"),
    "grad_norm": ("grad_norm", "train/grad_norm", "gradient_norm", "grad_norm/total", "gnorm"),
    "learning_rate": ("learning_rate", "lr", "train/learning_rate", "train/lr", "lr/group_0"),
    "epoch": ("epoch", "train/epoch"),
}
_EVAL_SKIP = ("runtime", "samples_per_second", "steps_per_second", "_step", "epoch")
_MISSING = object()
_NUM = (float, int)


def is_eval_key(key: str) -> bool:
    low = key.lower()
    if not low.startswith(("eval_", "eval/", "val_", "val/", "validation_", "validation/")):
        return False
    return not low.endswith(_EVAL_SKIP)


def choose_keys(sample: Sequence[dict], overrides: dict[str, str] | None = None) -> dict[str, str | None]:
    """The key used for each field: a configured column name wins, else the first alias seen."""
    seen: set[str] = set()
    for r in sample:
        seen.update(r)
    keys: dict[str, str | None] = {}
    for name, aliases in ALIASES.items():
        want = (overrides or {}).get(name)
        if want:
            keys[name] = want
            continue
        keys[name] = next((a for a in aliases if a in seen), None)
    return keys


def _column(rows: list[dict], key: str | None, name: str, s: Series, where: str) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    if key is None:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    get = itemgetter(key)
    try:  # the common case, every row holds a number: one C-level pass. array("d") refuses None and
        # strings (they take the per-value path below, which reports them); a JSON true/false reads as 1/0.
        return np.frombuffer(array("d", map(get, rows)), dtype=np.float64), np.ones(n, dtype=bool)
    except (KeyError, TypeError):
        pass
    try:
        vals = list(map(get, rows))
    except KeyError:
        vals = [r.get(key, _MISSING) for r in rows]
    if set(map(type, vals)) <= {float, int}:
        return np.array(vals, dtype=np.float64), np.ones(n, dtype=bool)
    out = np.full(n, np.nan)
    pres = np.zeros(n, dtype=bool)
    for i, v in enumerate(vals):
        t = type(v)
        if t is float or t is int:
            out[i] = v
            pres[i] = True
        elif v is _MISSING or v is None:
            continue
        elif t is str:
            try:
                out[i] = float(v)
                pres[i] = True
                s.problem("entry", f"{where}{i}/{key}", f"{key} logged as a string ({v!r}); read as a number")
            except ValueError:
                s.problem("entry", f"{where}{i}/{key}", f"{key} is not a number ({v[:40]!r}); value skipped")
        else:
            s.problem("entry", f"{where}{i}/{key}", f"{key} is not a number ({type(v).__name__}); value skipped")
    return out, pres


def records_to_series(
    records: Sequence[Any],
    s: Series,
    *,
    where: str = "",
    overrides: dict[str, str] | None = None,
    index_steps: bool = False,
) -> Series:
    """`where` prefixes locators (e.g. "/log_history/" or "line "). `index_steps`: entries carry no step
    (printed log dicts), so the 1-based entry number stands in for it."""
    dicts = records if set(map(type, records)) == {dict} else [r for r in records if type(r) is dict]
    if len(dicts) != len(records):
        i = next(i for i, r in enumerate(records) if type(r) is not dict)
        s.problem("entry", f"{where}{i}", f"{len(records) - len(dicts)} entries are not JSON objects; skipped")
    sample = dicts[:2000]
    keys = choose_keys(sample, overrides)
    s.meta.setdefault("keys", {k: v for k, v in keys.items() if v})
    lk, gk, sk = keys["loss"], keys["grad_norm"], keys["step"]
    seen = {k for r in sample for k in r}
    extra_keys = sorted(k for k in seen if trainers.wanted(k))
    s.trainer = trainers.kind_of(seen)
    train_keys = [k for k in (lk, gk) if k]
    if len(train_keys) == 2:
        rows = [r for r in dicts if (lk in r or gk in r) and "train_runtime" not in r]
    elif train_keys:
        rows = [r for r in dicts if train_keys[0] in r and "train_runtime" not in r]
    elif extra_keys:  # PPO logs no `loss`: its rows are the ones with its own metrics
        rows = [r for r in dicts if any(k in r for k in extra_keys) and not any(map(is_eval_key, r))]
    else:
        rows = []
    if index_steps or sk is None:
        steps = np.arange(1, len(rows) + 1, dtype=np.float64)
        spres = np.ones(len(rows), dtype=bool)
        if rows and not index_steps:
            s.problem("entry", f"{where}0", "entries carry no step number; their order stands in for it")
    else:
        steps, spres = _column(rows, sk, "step", s, where)
    cols = {}
    present = {}
    for name in ("loss", "grad_norm", "learning_rate", "epoch"):
        cols[name], present[name] = _column(rows, keys[name], name, s, where)
    ok = spres & np.isfinite(steps)
    for k in extra_keys:
        vals, pres = _column(rows, k, k, s, where)
        m = pres & ok
        if m.any():
            s.extra[k] = eval_arrays(list(zip(steps[m].astype(np.int64).tolist(), vals[m].tolist())))
    if not ok.all():
        s.problem(
            "entry",
            f"{where}{int(np.flatnonzero(~ok)[0])}",
            f"{int((~ok).sum())} entries without a usable step; skipped",
        )
        steps = steps[ok]
        cols = {k: v[ok] for k, v in cols.items()}
        present = {k: v[ok] for k, v in present.items()}
    from_columns(steps.astype(np.int64), present=present, series=s, **cols)
    # eval metrics: any row with an eval key
    ev: dict[str, list[tuple[int, float]]] = {}
    in_train = any(is_eval_key(k) for r in rows[:200] for k in r)
    cand = dicts if (in_train or not lk) else [r for r in dicts if lk not in r]
    erows = [r for r in cand if any(is_eval_key(k) for k in r)]
    for r in erows:
        st = r.get(sk) if sk else None
        if type(st) is not int:
            if type(st) is float and math.isfinite(st):
                st = int(st)
            else:
                continue
        for k, v in r.items():
            if is_eval_key(k) and type(v) in _NUM:
                name = k.replace("/", "_")
                if name.startswith("validation_"):
                    name = "eval_" + name[len("validation_") :]
                elif name.startswith("val_"):
                    name = "eval_" + name[4:]
                ev.setdefault(name, []).append((st, float(v)))
    for name, pairs in ev.items():
        s.evals[name] = eval_arrays(pairs)
    return s
