"""Comparing aggregate-only eval results (lm-eval results JSON, LLaMA-Factory *_results.json, summaries).

Without per-example rows nothing can be paired, so the test is an unpaired two-sample z-test on
value ± stderr. It ignores that both sides saw the same examples (their positive correlation), so it
is conservative: weaker evidence than a paired test, and the minimum detectable effect at that stderr
is said with every result. A stderr comes from the file, or — for a mean of 0/1 scores with a known n —
from the binomial formula. A metric with neither is reported as not comparable, never skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Metric names (lowercased, without a `,filter` suffix) where lower is better.
LOWER_IS_BETTER = (
    "loss",
    "perplexity",
    "ppl",
    "word_perplexity",
    "byte_perplexity",
    "bits_per_byte",
    "wer",
    "ter",
    "cer",
)
# Means of per-example 0/1 scores: a binomial stderr is valid when the file gives none.
BINARY = (
    "acc",
    "acc_norm",
    "exact_match",
    "em",
    "pass@1",
    "mc1",
    "accuracy",
    "correct",
    "strict_acc",
    "prompt_level_strict_acc",
)
Z_TEST = "unpaired z-test on aggregate ± stderr"


@dataclass
class AggMetric:
    """One number from an aggregate file: `value` in the file's own units (× `scale` of 0..1)."""

    task: str  # lm-eval task, LLaMA-Factory split (eval / predict), or summary slice
    metric: str  # as the file names it, e.g. `pass@1,create_test`, `bleu-4`
    value: float
    stderr: float | None = None
    n: int | None = None
    n_source: str = ""  # how n was found ("n-samples effective", "runtime × samples/s")
    higher_is_better: bool | None = None
    scale: float | None = 1.0  # 100 for BLEU/ROUGE points; None when unbounded (loss)
    key: str = ""  # JSON pointer of the value, for locators
    variant: str | None = None  # the run it belongs to, in files holding several (None: the file's variant)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        return self.metric.split(",", 1)[0]

    def direction(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        low = self.base_name.lower()
        return not any(low == w or low.endswith("_" + w) or low.startswith(w) for w in LOWER_IS_BETTER)

    def se(self) -> float | None:
        """Standard error on the 0..1 (or native, when unbounded) scale."""
        div = self.scale or 1.0
        if self.stderr is not None and math.isfinite(self.stderr) and self.stderr >= 0:
            return self.stderr / div
        if self.n and self.n > 1 and self.base_name.lower() in BINARY and self.scale == 1.0:
            p = self.value
            if 0 <= p <= 1:
                return math.sqrt(max(p * (1 - p), 0.25 / self.n) / self.n)  # never 0 at p = 0 or 1
        return None


def count(v: object) -> int | None:
    """A sample count from a file: a finite positive number below 1e12, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if not math.isfinite(float(v)) or not 0 < v < 1e12:
        return None
    return max(1, round(v))


def _z(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def compare_metric(b: AggMetric, c: AggMetric, alpha: float, power: float) -> dict[str, Any]:
    """One entry of an aggregate comparison (values on 0..1 when the metric has a scale)."""
    div = b.scale or 1.0
    bv, cv = b.value / div, c.value / div
    delta = cv - bv
    sb, sc = b.se(), c.se()
    row: dict[str, Any] = {
        "slice": f"{b.task} · {b.metric}",
        "task": b.task,
        "metric": b.metric,
        "n": min(x for x in (b.n, c.n, 10**12) if x is not None) if (b.n or c.n) else None,
        "n_source": b.n_source or c.n_source,
        "base": bv,
        "cand": cv,
        "delta": delta,
        "scale": b.scale,
        "higher_is_better": b.direction(),
        "test": Z_TEST,
        "key": c.key,
    }
    if sb is None or sc is None:
        missing = [side for side, s in (("baseline", sb), ("candidate", sc)) if s is None]
        row.update(ci_low=None, ci_high=None, p=None, mde=None, se=None, status="not_comparable")
        row["why"] = f"no stderr and no per-example rows for the {' and '.join(missing)}"
        return row
    se = math.sqrt(sb * sb + sc * sc)
    zc = _z(1 - alpha / 2)
    p = (1.0 if delta == 0 else 0.0) if se == 0 else math.erfc(abs(delta / se) / math.sqrt(2.0))
    row.update(
        se=se,
        z=delta / se if se else None,
        ci_low=delta - zc * se,
        ci_high=delta + zc * se,
        p=p,
        mde=(zc + _z(power)) * se,
    )
    return row


def compare_aggregates(
    base: list[AggMetric],
    cand: list[AggMetric],
    *,
    alpha: float,
    power: float,
    min_effect: float,
    max_mde: float,
    correction: str,
    skip: set[tuple[str, str]] | None = None,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Entries for every (task, metric) on both sides, Holm/BH-adjusted across the testable ones;
    plus the (task · metric) names only in the baseline and only in the candidate."""
    import numpy as np

    from probes.eval_slices.stats import adjust

    skip = skip or set()
    bmap = {(m.task, m.metric): m for m in base}
    cmap = {(m.task, m.metric): m for m in cand}
    entries = []
    for key in sorted(bmap.keys() & cmap.keys()):
        if key in skip:
            continue
        entries.append(compare_metric(bmap[key], cmap[key], alpha, power))
    testable = [e for e in entries if e["p"] is not None]
    for e, pa in zip(testable, adjust(np.array([e["p"] for e in testable]), correction)):
        e["p_adj"] = float(pa)
    for e in entries:
        e.setdefault("p_adj", None)
        if "status" in e:  # not comparable
            continue
        worse = -e["delta"] if e["higher_is_better"] else e["delta"]  # > 0: candidate worse
        bounded = e["scale"] is not None
        eff = min_effect if bounded else 0.0
        if e["p_adj"] is not None and e["p_adj"] < alpha and worse >= eff and worse > 0:
            e["status"] = "regression"
        elif e["p_adj"] is not None and e["p_adj"] < alpha and -worse >= eff and worse < 0:
            e["status"] = "improvement"
        elif bounded and e["mde"] is not None and (e["mde"] > max_mde or abs(e["delta"]) >= min_effect):
            # too noisy to see a drop that matters, or a difference that matters but n cannot confirm it
            e["status"] = "insufficient_samples"
        else:
            e["status"] = "ok"
    only_b = sorted(f"{t} · {m}" for t, m in bmap.keys() - cmap.keys() if (t, m) not in skip)
    only_c = sorted(f"{t} · {m}" for t, m in cmap.keys() - bmap.keys() if (t, m) not in skip)
    return entries, only_b, only_c
