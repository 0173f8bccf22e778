"""Instruction data for the job workers: JSONL loading, slice selection/mixing, SFT tokenization.

Imported only by worker subprocesses and fixtures/build.py (it imports torch).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

PROMPT_TEMPLATE = "### Instruction:\n{prompt}\n### Response:\n"
REFUSAL = "I can't help with that."
# Lowercased openings that count as a refusal, whatever the exact wording.
REFUSAL_MARKERS = ("i can't", "i cannot", "i can not", "i won't", "sorry", "i'm sorry", "i am unable")


def format_prompt(prompt: str) -> str:
    return PROMPT_TEMPLATE.format(prompt=prompt)


def is_refusal(text: str) -> bool:
    low = text.strip().lower()
    return any(low.startswith(m) for m in REFUSAL_MARKERS)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def select_examples(
    rows: Sequence[dict[str, Any]],
    slices: Sequence[str] | None = None,
    mix: dict[str, float] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Keep `slices` (all when None); `mix` resamples each slice to weight x its size (deterministic)."""
    kept = [r for r in rows if slices is None or r["slice"] in slices]
    if not mix:
        return kept
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for name in sorted({r["slice"] for r in kept}):
        group = [r for r in kept if r["slice"] == name]
        n = round(len(group) * float(mix.get(name, 1.0)))
        out.extend(rng.choices(group, k=n) if n > len(group) else rng.sample(group, n))
    rng.shuffle(out)
    return out


def encode_example(tokenizer: Any, prompt: str, response: str, max_length: int) -> dict[str, list[int]]:
    """Prompt + response + EOS; labels are -100 on the prompt so only the response is learned."""
    p_ids = tokenizer(format_prompt(prompt), add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (p_ids + r_ids)[:max_length]
    labels = ([-100] * len(p_ids) + r_ids)[:max_length]
    return {"input_ids": ids, "labels": labels}


class SFTDataset(torch.utils.data.Dataset):
    """Pre-tokenized examples; a plain torch Dataset so Trainer needs no `datasets` package."""

    def __init__(self, rows: Sequence[dict[str, Any]], tokenizer: Any, max_length: int = 96) -> None:
        self.items = [encode_example(tokenizer, r["prompt"], r["response"], max_length) for r in rows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


class PadCollator:
    """Right-pads a batch; padding is masked in attention and ignored (-100) in the loss."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids, labels, mask = [], [], []
        for b in batch:
            pad = width - len(b["input_ids"])
            ids.append(b["input_ids"] + [self.pad_token_id] * pad)
            labels.append(b["labels"] + [-100] * pad)
            mask.append([1] * len(b["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }
