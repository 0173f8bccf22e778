"""Row records of per-example files (JSONL, CSV/TSV, a JSON list) for the readers that must look at
whole objects (judge outputs, unscored predictions), and the column choices they share."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json, read_text_capped
from probes.eval_slices.evaltable import EvalTable
from probes.eval_slices.readers.jsonl import json_objects_of

ID_KEYS = ("id", "example_id", "question_id", "doc_id", "uid", "item_id", "sample_id", "qid", "idx", "index")
SLICE_KEYS = ("slice", "category", "task", "domain", "subject", "difficulty", "topic", "skill")
VARIANT_KEYS = ("variant", "model", "model_id", "adapter", "system", "generator")
PROMPT_KEYS = ("prompt", "question", "instruction", "input", "query", "user_prompt")


def pick(keys: list[str] | set[str], choices: tuple[str, ...]) -> str | None:
    low = {str(k).lower(): k for k in keys}
    for c in choices:
        if c in low:
            return low[c]
    return None


def record_keys(rows: list[tuple[int, dict[str, Any]]], limit: int = 1000) -> list[str]:
    """Every key of the first `limit` records, in the order first seen (records may differ in their keys)."""
    return list(dict.fromkeys(k for _, o in rows[:limit] for k in o))


def first_keys(path: Path) -> list[str]:
    """Keys of the first record (JSONL line, CSV header, first object of a JSON list); [] when none."""
    try:
        head = read_text_capped(path, 65536, errors="replace")
    except OSError:
        return []
    low = path.name.lower()
    if low.endswith((".csv", ".tsv")):
        line = head.splitlines()[0] if head.strip() else ""  # \r alone ends a line too (csv refuses it inside)
        try:
            return [c.strip() for c in next(csv.reader([line], delimiter="\t" if low.endswith(".tsv") else ","), [])]
        except csv.Error:  # a header csv cannot split: the table reader reports the file
            return []
    if low.endswith(".jsonl"):
        for line in head.split("\n"):
            if line.strip():
                try:
                    obj = loads_json(line)
                except ValueError:
                    return []
                return [str(k) for k in obj] if isinstance(obj, dict) else []
    return []


def records(path: Path, table: EvalTable) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) for every record; unparsable JSONL lines become a `bad_lines` problem."""
    low = path.name.lower()
    if low.endswith((".csv", ".tsv")):
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if low.endswith(".tsv") else ",")
                out = [(i, dict(r)) for i, r in enumerate(reader, 2) if any(v for v in r.values())]
        except UnicodeDecodeError as exc:
            raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
        except csv.Error as exc:
            raise ReadError(path, f"invalid CSV: {exc}") from None
        table.line_offset = 2
        return out
    objects = json_objects_of(path, table)
    table.line_offset = 1
    return objects


def ids_of(rows: list[tuple[int, dict[str, Any]]], keys: list[str], groups: list[str] | None = None) -> list[str]:
    """Example ids: the id column (+ `turn` when a file has several turns per question), else the
    prompt text's hash (the same eval set on both sides), else the line's position."""
    import hashlib

    id_key = pick(keys, ID_KEYS)
    turn = pick(keys, ("turn",))
    prompt = pick(keys, PROMPT_KEYS)
    out: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for i, (_, o) in enumerate(rows):
        if id_key is not None and o.get(id_key) not in (None, ""):
            base = str(o[id_key])
            if turn is not None and o.get(turn) not in (None, ""):
                base += f"#t{o[turn]}"
        elif prompt is not None:
            base = hashlib.blake2b(str(o.get(prompt, "")).encode("utf-8", "replace"), digest_size=8).hexdigest()
            g = groups[i] if groups else ""
            k = seen[(g, base)] = seen.get((g, base), -1) + 1
            base = f"{base}#{k}" if k else base
        else:  # position within its own variant: the same eval set in the same order
            g = groups[i] if groups else ""
            k = seen[(g, "")] = seen.get((g, ""), -1) + 1
            base = f"row{k}"
        out.append(base)
    return out


def build(
    table: EvalTable,
    rows: list[tuple[int, dict[str, Any]]],
    keys: list[str],
    score: list[Any],
    default_variant: str,
    output_key: str | None = None,
) -> EvalTable:
    """An EvalTable from records and one score per record: id, slice (first slice column, `all` when
    none), variant column when present; further slice columns become groupings."""
    import numpy as np

    from probes.eval_slices.readers.arrays import factorize
    from probes.eval_slices.readers.columns import normalize

    var_key = pick(keys, VARIANT_KEYS)
    variants = [str(o.get(var_key) or "") for _, o in rows] if var_key else None
    slice_keys = [k for k in (pick(keys, (c,)) for c in SLICE_KEYS) if k is not None]
    cols: dict[str, list[Any]] = {
        "id": ids_of(rows, keys, variants),
        "slice": [str(o.get(slice_keys[0]) or "") for _, o in rows] if slice_keys else ["all"] * len(rows),
        "score": score,
    }
    header = ["id", "slice", "score"]
    if variants is not None:
        cols["variant"], header = variants, [*header, "variant"]
    if output_key is not None:  # the model's text, read for refusal openings
        cols["output"], header = [o.get(output_key) for _, o in rows], [*header, "output"]
    table = normalize(table, header, cols, default_variant)
    table.columns = list(keys)
    for k in slice_keys[1:]:
        codes, names = factorize([str(o.get(k) or "") for _, o in rows])
        table.groupings[str(k)] = (np.asarray(codes), [f"{k}={n}" for n in names])
    return table
