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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import display_path
from doctor.core.safeio import loads_json, read_text_capped
from probes.common.adapterinfo import AdapterInfo
from probes.serving import rules as R

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


def lineage_checks(
    trained: Tok, served: Tok | None, served_folder: Path, base_cfg: dict[str, Any] | None, info: AdapterInfo
) -> list[tuple[Any, str, dict[str, Any]]]:
    """(rule, message, evidence) for each way the served tokenizer/template/EOS differ from training."""
    out: list[tuple[Any, str, dict[str, Any]]] = []
    rows = (base_cfg or {}).get("vocab_size")
    rows = rows if isinstance(rows, int) else None
    tensors = info.tensors or {}
    emb = [(k, s) for k, s in tensors.items() if "embed_tokens" in k and ".lora_" not in k and len(s) == 2]
    adapter_rows = max((s[0] for _, s in emb), default=None)
    where = f"served tokenizer ({display_path(served_folder)})"
    no_rows = rows is not None and trained.size > rows and adapter_rows is None
    # SRV034: tokens the adapter was trained with that the served tokenizer / embedding lacks
    if served is not None:
        new = {c: i for c, i in trained.added.items() if c not in served.added and c not in served.vocab}
        if new:
            names = sorted(new, key=new.get)  # type: ignore[arg-type]
            rows_txt = (
                f"; the adapter's embedding has {adapter_rows} rows, the base {rows}"
                if adapter_rows and rows and adapter_rows != rows
                else f"; ids ≥ {rows} have no embedding row and the adapter saves none"
                if no_rows
                else ""
            )
            out.append(
                (
                    R.TOKENIZER_VOCAB,
                    f"trained with {len(new)} added token(s) {names[:4]} (ids {sorted(new.values())[:4]}) that the "
                    f"{where} does not have (vocabulary {trained.size} vs {served.size}){rows_txt}: prompts with "
                    "them are split into other tokens and the model can never emit them",
                    {
                        "added_tokens": dict(list(new.items())[:20]),
                        "trained_size": trained.size,
                        "served_size": served.size,
                        "adapter_embedding_rows": adapter_rows,
                        "base_vocab_size": rows,
                    },
                )
            )
    if no_rows and not any(r is R.TOKENIZER_VOCAB for r, _, _ in out):
        out.append(
            (
                R.TOKENIZER_VOCAB,
                f"trained tokenizer has {trained.size} tokens but the served embedding has {rows} rows and the "
                f"adapter saves no embedding: token ids ≥ {rows} have no row",
                {"trained_size": trained.size, "base_vocab_size": rows},
            )
        )
    # SRV035: chat template
    if trained.template and served is not None:
        if not served.template:
            out.append(
                (
                    R.CHAT_TEMPLATE,
                    f"trained with a chat template ({trained.template_file}) but the {where} has none",
                    {"trained_file": trained.template_file},
                )
            )
        else:
            diff = first_difference(trained.template, served.template)
            if diff is not None:
                line, a, b = diff
                out.append(
                    (
                        R.CHAT_TEMPLATE,
                        f"chat template differs from training at normalized line {line}: trained {a!r}, served {b!r}",
                        {"line": line, "trained": a, "served": b, "trained_file": trained.template_file},
                    )
                )
    # SRV036: EOS the adapter ends its answers with vs what generation stops at
    gen = (
        _json(served_folder / "generation_config.json")
        if (served_folder / "generation_config.json").is_file()
        else None
    )
    stop = _eos_ids(gen) or (
        [base_cfg["eos_token_id"]] if isinstance((base_cfg or {}).get("eos_token_id"), int) else []
    )
    eos_id = trained.id_of(trained.eos)
    if stop and eos_id is not None and eos_id not in stop:
        out.append(
            (
                R.EOS_MISMATCH,
                f"trained EOS {trained.eos!r} (id {eos_id}) is not an eos_token_id of generation_config.json "
                f"({stop}): generation does not stop where the adapter ends its answers",
                {"trained_eos": trained.eos, "trained_eos_id": eos_id, "generation_eos_ids": stop},
            )
        )
    # SRV037: new special tokens whose embedding rows no one trained
    saved_embedding = bool(emb) or any("lora_embedding" in k or "trainable_tokens" in k for k in tensors)
    if rows is not None and not saved_embedding:
        fresh = sorted((i, c) for c, i in trained.added.items() if c in trained.special and i >= rows)
        base_new = (
            sorted(
                (i, c) for c, i in trained.added.items() if c in trained.special and served and c not in served.added
            )
            if served is not None
            else []
        )
        hits = fresh or base_new
        if hits:
            toks, ids = [c for _, c in hits[:4]], [i for i, _ in hits[:4]]
            out.append(
                (
                    R.UNTRAINED_TOKENS,
                    f"{len(hits)} new special token(s) {toks} (ids {ids}) have "
                    "embedding rows the adapter never trained or saved (no modules_to_save / trainable_token_indices "
                    "for embed_tokens, lm_head)",
                    {"tokens": {c: i for i, c in hits[:20]}, "base_vocab_size": rows},
                )
            )
    return out
