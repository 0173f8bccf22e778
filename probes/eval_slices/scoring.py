"""Scoring per-example predictions that came without a score: exact match after normalisation, and the
sentence-level BLEU-4 / ROUGE-1/2/L that LLaMA-Factory averages into `predict_bleu-4` / `predict_rouge-*`.

Standard library only. Each scorer returns a value in 0..1 and is named in the table's facts, so a
reader of the report knows how a row was scored.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter

# SQuAD-style answer normalisation (the one lm-eval's and most QA scorers' exact match use).
EXACT_MATCH = "exact_match"
EXACT_MATCH_HOW = "exact match after lowercasing and removing punctuation, articles (a/an/the) and extra whitespace"
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = str.maketrans("", "", string.punctuation)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalise(text: object) -> str:
    s = unicodedata.normalize("NFKC", "" if text is None else str(text)).lower()
    s = s.translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(pred: object, target: object) -> float:
    """1.0 when the normalised prediction equals the normalised target (any of them, for a list)."""
    targets = target if isinstance(target, list) else [target]
    p = normalise(pred)
    return float(any(p == normalise(t) for t in targets))


def tokens(text: object) -> list[str]:
    """Words and punctuation; CJK text one character per token (what jieba-free scorers do)."""
    s = unicodedata.normalize("NFKC", "" if text is None else str(text)).lower()
    out: list[str] = []
    for tok in _WORD.findall(s):
        if _CJK.search(tok):
            out.extend(tok)
        else:
            out.append(tok)
    return out


def _ngrams(toks: list[str], n: int) -> Counter:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def sentence_bleu4(pred: list[str], ref: list[str]) -> float:
    """Sentence BLEU-4 with Chen & Cherry's smoothing 3 (NIST geometric: a zero n-gram match counts as
    1/2^k), the smoothing LLaMA-Factory passes to nltk. 0..1."""
    if not pred or not ref:
        return 0.0
    log_sum, k = 0.0, 1
    for n in range(1, 5):
        cand = _ngrams(pred, n)
        total = sum(cand.values())
        if total == 0:
            return 0.0  # shorter than 4 tokens: nltk returns 0 without an n-gram of that order too
        match = sum(min(c, _ngrams(ref, n)[g]) for g, c in cand.items())
        if match == 0:
            k *= 2
            p = 1.0 / (k * total)
        else:
            p = match / total
        log_sum += math.log(p) / 4
    bp = 1.0 if len(pred) > len(ref) else math.exp(1 - len(ref) / len(pred))
    return bp * math.exp(log_sum)


def _f1(match: int, n_pred: int, n_ref: int) -> float:
    if match == 0 or n_pred == 0 or n_ref == 0:
        return 0.0
    p, r = match / n_pred, match / n_ref
    return 2 * p * r / (p + r)


def rouge_n(pred: list[str], ref: list[str], n: int) -> float:
    a, b = _ngrams(pred, n), _ngrams(ref, n)
    return _f1(sum((a & b).values()), sum(a.values()), sum(b.values()))


def rouge_l(pred: list[str], ref: list[str]) -> float:
    """ROUGE-L F1 from the longest common subsequence (O(len·len), rows of ints)."""
    if not pred or not ref:
        return 0.0
    prev = [0] * (len(ref) + 1)
    for x in pred:
        cur = [0]
        for j, y in enumerate(ref, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return _f1(prev[-1], len(pred), len(ref))


# metric name (as LLaMA-Factory writes it, after `predict_`) -> scorer over token lists
GENERATION = {
    "bleu-4": sentence_bleu4,
    "rouge-1": lambda p, r: rouge_n(p, r, 1),
    "rouge-2": lambda p, r: rouge_n(p, r, 2),
    "rouge-l": rouge_l,
}
GENERATION_HOW = (
    "sentence BLEU-4 (smoothing 3) and ROUGE-1/2/L F1 per example, on word tokens (CJK per character), "
    "0..1 (LLaMA-Factory reports the mean × 100)"
)
