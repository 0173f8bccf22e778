"""Tokenizer and chat-template lineage: what the adapter was trained with against what the server uses.

The trained tokenizer is the one saved beside the adapter (or in the folder above it, the run's output
dir): tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja. The served one is
the server's `--tokenizer` / `--tokenizer-path`, else the base model folder (vLLM V1, SGLang and TGI
tokenize with the base's unless told otherwise). Files are read as JSON / text; nothing is imported from
the tokenizers library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import display_path
from doctor.core.safeio import loads_json, read_text_capped
from probes.common.adapterinfo import AdapterInfo

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
_CAP = 64 << 20


@dataclass
class Tok:
    folder: Path
    size: int = 0  # max token id + 1 (vocabulary plus added tokens)
    added: dict[str, int] = field(default_factory=dict)  # added token content → id
    special: set[str] = field(default_factory=set)
    vocab: dict[str, int] = field(default_factory=dict)
    eos: str | None = None
    pad: str | None = None
    template: str | None = None
    template_file: str | None = None

    def id_of(self, token: str | None) -> int | None:
        if token is None:
            return None
        return self.added.get(token, self.vocab.get(token))


def _json(path: Path) -> Any:
    try:
        return loads_json(read_text_capped(path, _CAP))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _tok_str(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def has_tokenizer(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json"))


def read_tokenizer(folder: Path, ctx: ProbeContext) -> Tok | None:
    """The tokenizer files of a folder, read once per scan per (size, mtime) of each: many routes share a base."""
    stamp = []
    for name in FILES:
        try:
            st = (folder / name).stat()
            stamp.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    key = (str(folder.resolve()), tuple(stamp))
    return ctx.session.memo("serving.tokenizer", key, lambda: _read_tokenizer(folder))


def _read_tokenizer(folder: Path) -> Tok | None:
    if not has_tokenizer(folder):
        return None
    t = Tok(folder)
    tj = _json(folder / "tokenizer.json")
    if isinstance(tj, dict):
        model = tj.get("model") if isinstance(tj.get("model"), dict) else {}
        vocab = model.get("vocab")
        if isinstance(vocab, dict):
            t.vocab = {str(k): v for k, v in vocab.items() if isinstance(v, int)}
        elif isinstance(vocab, list):  # Unigram: [[piece, score], …]
            t.vocab = {str(p[0]): i for i, p in enumerate(vocab) if isinstance(p, list) and p}
        for a in tj.get("added_tokens") or []:
            if isinstance(a, dict) and isinstance(a.get("id"), int) and isinstance(a.get("content"), str):
                t.added[a["content"]] = a["id"]
                if a.get("special"):
                    t.special.add(a["content"])
    tc = _json(folder / "tokenizer_config.json")
    if isinstance(tc, dict):
        for k, v in (tc.get("added_tokens_decoder") or {}).items():
            if isinstance(v, dict) and isinstance(v.get("content"), str) and str(k).isdigit():
                t.added.setdefault(v["content"], int(k))
                if v.get("special"):
                    t.special.add(v["content"])
        t.eos, t.pad = _tok_str(tc.get("eos_token")), _tok_str(tc.get("pad_token"))
        ct = tc.get("chat_template")
        if isinstance(ct, list):  # [{"name": "default", "template": …}, …]
            ct = next((c.get("template") for c in ct if isinstance(c, dict) and c.get("name") == "default"), None)
        if isinstance(ct, str):
            t.template, t.template_file = ct, "tokenizer_config.json"
    stm = _json(folder / "special_tokens_map.json")
    if isinstance(stm, dict):
        t.eos = t.eos or _tok_str(stm.get("eos_token"))
        t.pad = t.pad or _tok_str(stm.get("pad_token"))
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        try:
            t.template, t.template_file = read_text_capped(jinja, 4 << 20), "chat_template.jinja"
        except (OSError, UnicodeDecodeError):
            pass
    ids = list(t.vocab.values()) + list(t.added.values())
    t.size = max(ids) + 1 if ids else 0
    return t


def trained_tokenizer(adapter: Path, ctx: ProbeContext) -> Tok | None:
    for folder in (adapter, adapter.parent):
        tok = read_tokenizer(folder, ctx)
        if tok is not None:
            return tok
    return None


def normalize_template(text: str) -> list[str]:
    """Lines of a Jinja chat template with whitespace control and indentation taken out."""
    text = text.replace("{%-", "{%").replace("-%}", "%}").replace("{{-", "{{").replace("-}}", "}}")
    return [re.sub(r"\s+", " ", ln).strip() for ln in text.splitlines() if ln.strip()]


def first_difference(a: str, b: str) -> tuple[int, str, str] | None:
    """(1-based line in the normalized text, trained line, served line) of the first difference."""
    la, lb = normalize_template(a), normalize_template(b)
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else "(end of template)"
        y = lb[i] if i < len(lb) else "(end of template)"
        if x != y:
            return i + 1, x, y
    return None


def _eos_ids(gen: Any) -> list[int]:
    v = gen.get("eos_token_id") if isinstance(gen, dict) else None
    if isinstance(v, int):
        return [v]
    return [x for x in v if isinstance(x, int)] if isinstance(v, list) else []


@dataclass
class Lineage:
    """The tokenizer an adapter was trained with against the one its server tokenizes with."""

    trained: Tok
    served: Tok | None  # None: the served folder has no tokenizer files
    served_folder: Path
    base_cfg: dict[str, Any] | None
    info: AdapterInfo

    @cached_property
    def rows(self) -> int | None:
        """The served embedding's rows (base vocab_size)."""
        rows = (self.base_cfg or {}).get("vocab_size")
        return rows if isinstance(rows, int) else None

    @cached_property
    def embedding(self) -> list[tuple[str, tuple[int, ...]]]:
        """Full embedding matrices the adapter saves (resized vocabulary)."""
        tensors = self.info.tensors
        return [(k, s) for k, s in tensors.items() if "embed_tokens" in k and ".lora_" not in k and len(s) == 2]

    @property
    def adapter_rows(self) -> int | None:
        return max((s[0] for _, s in self.embedding), default=None)

    @property
    def where(self) -> str:
        return f"served tokenizer ({display_path(self.served_folder)})"

    @property
    def no_rows(self) -> bool:
        """Trained ids beyond the served embedding, and no embedding saved with the adapter."""
        return self.rows is not None and self.trained.size > self.rows and self.adapter_rows is None


def lineage(
    folder: Path, served_folder: Path | None, base_cfg: dict[str, Any] | None, info: AdapterInfo, ctx: ProbeContext
) -> Lineage | None:
    """The lineage to check, or None: no trained tokenizer, nothing served to compare, or the same files."""
    trained = trained_tokenizer(folder, ctx)
    if trained is None or served_folder is None:
        return None
    served = read_tokenizer(served_folder, ctx)
    if served is not None and served.folder.resolve() == trained.folder.resolve():
        return None  # the server tokenizes with the adapter's own tokenizer
    return Lineage(trained, served, served_folder, base_cfg, info)


Got = tuple[str, dict[str, Any]] | None  # (message, evidence)


def vocab_gap(lin: Lineage) -> Got:
    """SRV034: tokens the adapter was trained with that the served tokenizer / embedding lacks."""
    trained, served, rows, adapter_rows = lin.trained, lin.served, lin.rows, lin.adapter_rows
    if served is not None:
        new = {c: i for c, i in trained.added.items() if c not in served.added and c not in served.vocab}
        if new:
            names = sorted(new, key=new.get)  # type: ignore[arg-type]
            rows_txt = (
                f"; the adapter's embedding has {adapter_rows} rows, the base {rows}"
                if adapter_rows and rows and adapter_rows != rows
                else f"; ids ≥ {rows} have no embedding row and the adapter saves none"
                if lin.no_rows
                else ""
            )
            return (
                f"trained with {len(new)} added token(s) {names[:4]} (ids {sorted(new.values())[:4]}) that the "
                f"{lin.where} does not have (vocabulary {trained.size} vs {served.size}){rows_txt}: prompts with "
                "them are split into other tokens and the model can never emit them",
                {
                    "added_tokens": dict(list(new.items())[:20]),
                    "trained_size": trained.size,
                    "served_size": served.size,
                    "adapter_embedding_rows": adapter_rows,
                    "base_vocab_size": rows,
                },
            )
    if lin.no_rows:
        return (
            f"trained tokenizer has {trained.size} tokens but the served embedding has {rows} rows and the "
            f"adapter saves no embedding: token ids ≥ {rows} have no row",
            {"trained_size": trained.size, "base_vocab_size": rows},
        )
    return None


def template_gap(lin: Lineage) -> Got:
    """SRV035: the chat template the adapter was trained with against the served one."""
    trained, served = lin.trained, lin.served
    if not trained.template or served is None:
        return None
    if not served.template:
        return (
            f"trained with a chat template ({trained.template_file}) but the {lin.where} has none",
            {"trained_file": trained.template_file},
        )
    diff = first_difference(trained.template, served.template)
    if diff is None:
        return None
    line, a, b = diff
    return (
        f"chat template differs from training at normalized line {line}: trained {a!r}, served {b!r}",
        {"line": line, "trained": a, "served": b, "trained_file": trained.template_file},
    )


def eos_gap(lin: Lineage) -> Got:
    """SRV036: the EOS the adapter ends its answers with against what generation stops at."""
    trained, served_folder, base_cfg = lin.trained, lin.served_folder, lin.base_cfg
    gen = (
        _json(served_folder / "generation_config.json")
        if (served_folder / "generation_config.json").is_file()
        else None
    )
    stop = _eos_ids(gen) or (
        [base_cfg["eos_token_id"]] if isinstance((base_cfg or {}).get("eos_token_id"), int) else []
    )
    eos_id = trained.id_of(trained.eos)
    if not stop or eos_id is None or eos_id in stop:
        return None
    return (
        f"trained EOS {trained.eos!r} (id {eos_id}) is not an eos_token_id of generation_config.json "
        f"({stop}): generation does not stop where the adapter ends its answers",
        {"trained_eos": trained.eos, "trained_eos_id": eos_id, "generation_eos_ids": stop},
    )


def untrained_tokens(lin: Lineage) -> Got:
    """SRV037: new special tokens whose embedding rows no one trained."""
    trained, served, rows, tensors = lin.trained, lin.served, lin.rows, lin.info.tensors
    saved_embedding = bool(lin.embedding) or any("lora_embedding" in k or "trainable_tokens" in k for k in tensors)
    if rows is None or saved_embedding:
        return None
    fresh = sorted((i, c) for c, i in trained.added.items() if c in trained.special and i >= rows)
    base_new = (
        sorted((i, c) for c, i in trained.added.items() if c in trained.special and served and c not in served.added)
        if served is not None
        else []
    )
    hits = fresh or base_new
    if not hits:
        return None
    toks, ids = [c for _, c in hits[:4]], [i for i, _ in hits[:4]]
    return (
        f"{len(hits)} new special token(s) {toks} (ids {ids}) have "
        "embedding rows the adapter never trained or saved (no modules_to_save / trainable_token_indices "
        "for embed_tokens, lm_head)",
        {"tokens": {c: i for i, c in hits[:20]}, "base_vocab_size": rows},
    )
