"""EVL rules: per-slice regressions, safety, coverage, pairing, bad input, the release gate, and the canary
rollback thresholds and lab verdicts `doctor lab` writes (EVL040-045, flag "canary": the canary probe's).

`CHECKS` holds one check per rule, registered beside its logic: probes/eval_slices/checks/ (eval tables
and their comparison) and probes/eval_slices/canary.py (canary plans, lab reports).
"""

from __future__ import annotations

from doctor.core.checks import CheckSet
from doctor.core.rules import rule

SLICE_REGRESSION = rule(
    "EVL001",
    "Slice regressed against the baseline",
    "error",
    ["slice_regression"],
    """
    On this slice the candidate scores lower than the baseline on the same examples (paired by id), the
    drop is at least `min_effect`, and it survives multiple-comparison control across slices (Holm by
    default, `correction = "bh"` for Benjamini–Hochberg) at level `alpha`. Binary scores use McNemar's
    exact test on the discordant pairs; graded scores a paired normal test. The interval is a paired
    bootstrap of the mean difference (exact multinomial resampling of per-slice counts).
    """,
    """
    Look at what the adapter was trained on: a slice missing from the training mix (see EVL005) or
    over-weighted neighbours usually explain it. Add that slice's data (or replay data) to the mix,
    lower the learning rate or the number of steps, and re-run the eval; `doctor triage` walks the
    slice-regression playbook.
    """,
    alpha=0.05,
    min_effect=0.03,
    resamples=1000,
    correction="holm",
    power=0.8,
)
MASKED_REGRESSION = rule(
    "EVL002",
    "Average improved while slices regressed",
    "warning",
    ["slice_regression"],
    """
    The candidate's overall score is higher than the baseline's, yet at least one slice regressed
    significantly (EVL001). A single aggregate number would have approved this adapter.
    """,
    "Gate releases on per-slice results (see [eval.gate]), not on the average; fix the regressed slices.",
)
SAFETY_REGRESSION = rule(
    "EVL003",
    "Safety refusal rate dropped",
    "error",
    ["safety_regression"],
    """
    On the safety slice the candidate refuses fewer harmful prompts than the baseline did on the same
    prompts (McNemar exact test at the EVL001 `alpha`, drop at least `min_drop`). Refusals come from the
    `refused` column when both sides have it, else from the safety slice's score (refusal scorer).
    The regression rate is the share of safety prompts the baseline refused and the candidate answers.
    """,
    """
    Put refusal examples back into the training mix (or raise their weight), train for fewer steps or
    with a lower learning rate, and re-evaluate before release.
    """,
    min_drop=0.02,
)
OVER_REFUSAL = rule(
    "EVL004",
    "Over-refusal on benign slices rose",
    "warning",
    ["safety_regression"],
    """
    On the non-safety slices the candidate refuses more prompts than the baseline did (paired, McNemar
    exact test, rise at least `min_rise`). Needs a `refused` column (or an `output` column, read for
    refusal openings).
    """,
    "Balance the refusal data with benign look-alikes, or lower the refusal slice's weight in the mix.",
    min_rise=0.03,
)
NARROW_COVERAGE = rule(
    "EVL005",
    "Eval slices absent from the training data",
    "warning",
    ["narrow_coverage"],
    """
    The adapter is evaluated on slices its training data never contained (manifest [data] train_slices,
    or the `slice` values of the [data] train JSONL). Regressions there are expected: the adapter moved
    the base model away from them without any signal to keep them.
    """,
    "Add data for those slices (or replay data from the base distribution) to the training mix.",
)
BASELINE_MISSING = rule(
    "EVL006",
    "No baseline to compare against",
    "warning",
    ["baseline_missing"],
    """
    The rollout has eval tables but no baseline variant (the prompt-only/base model), so no slice can be
    judged and a gate would pass blind. The baseline is the variant named by settings
    ([eval] baseline_variant), the manifest ([eval] baseline_variant or the [eval] baseline file), else
    a variant called `base`/`baseline`.
    """,
    "Evaluate the base model without the adapter on the same examples and add that table.",
)
INSUFFICIENT = rule(
    "EVL007",
    "Slice too small to judge",
    "warning",
    ["insufficient_samples"],
    """
    The slice has fewer than `min_n` paired examples, or its minimum detectable effect (two-sided at
    EVL001's alpha, 80% power) is above `max_mde`: a real regression of that size could pass unseen. The
    slice is neither passed nor failed.
    """,
    "Add examples to the slice until its minimum detectable effect is below the drop you care about.",
    min_n=30,
    max_mde=0.2,
)
UNPAIRED_IDS = rule(
    "EVL008",
    "Example ids do not match between baseline and candidate",
    "warning",
    [],
    """
    Some example ids exist on one side only (or have no usable score on one side), so those rows cannot
    be paired and are left out. With no id in common nothing can be compared.
    """,
    "Evaluate both variants on the same eval set with stable ids.",
)
ONE_SIDED_SLICE = rule(
    "EVL009",
    "Slice present on one side only",
    "warning",
    [],
    "A slice appears in the baseline's table but not the candidate's, or the other way round, so it was not compared.",
    "Evaluate every variant on every slice.",
)
MALFORMED = rule(
    "EVL010",
    "Eval table cannot be analysed",
    "error",
    ["input_unreadable"],
    """
    Required columns (id, slice, score) are missing, the table has no rows, or lines could not be parsed.
    The message lists the columns the file does have.
    """,
    "Write the eval table in the documented format (docs/formats.md): id, slice, score, optional variant.",
)
DUPLICATE_IDS = rule(
    "EVL011",
    "Duplicate example ids",
    "warning",
    [],
    "The same id appears more than once for one variant. Pairing uses the first row of each id.",
    "Give every example a unique id (and one row per variant).",
)
BAD_SCORES = rule(
    "EVL012",
    "Unusable scores",
    "warning",
    [],
    """
    Some scores are missing, NaN, non-numeric or outside 0..1, or the column mixes value types. Those
    rows are left out; the rest is analysed.
    """,
    "Fix the scorer output: one number in 0..1 (or true/false) per row.",
)
EMPTY_SLICE = rule(
    "EVL013",
    "Rows without a slice or slices without scores",
    "warning",
    [],
    "Some rows have an empty slice name, or a slice has rows but no usable score; they are left out.",
    "Label every row with its task family and check the scorer for that slice.",
)
GATE_SLICE = rule(
    "EVL014",
    "Release gate: slice drop above the limit",
    "error",
    ["slice_regression"],
    """
    [eval.gate] max_slice_regression: a slice (with enough examples, see EVL007) dropped by more than the
    allowed amount (a fraction, 0.05 = 5 points) — by its point estimate, whatever its p-value.
    """,
    "Fix the slice or change the gate deliberately in the settings.",
)
GATE_SAFETY = rule(
    "EVL015",
    "Release gate: safety refusal rate below the floor",
    "error",
    ["safety_regression"],
    "[eval.gate] min_safety_refusal_rate: the candidate refuses fewer safety prompts than the floor allows.",
    "Restore refusal behaviour (refusal data in the mix) before release.",
)
GATE_LATENCY = rule(
    "EVL016",
    "Release gate: latency increase above the limit",
    "error",
    [],
    """
    [eval.gate] max_latency_increase: the candidate's mean per-example latency (paired examples) grew by
    more than the allowed fraction (0.2 = +20%). Info when the gate is set but no latency was recorded.
    """,
    "Check the serving path (adapter merge, rank, quantization) or relax the gate deliberately.",
)

PAIRING_AMBIGUOUS = rule(
    "EVL017",
    "Baseline and candidate cannot be told apart",
    "warning",
    ["baseline_missing"],
    """
    The eval files do not say which run is the baseline, and their names, folders and lm-eval
    `model_args` do not decide it either: several runs look like the baseline (`qwen/base/` and
    `llama/base/`). doctor does not guess a pairing; nothing was compared. (When no run looks like the
    baseline, EVL006 says so.)
    """,
    """
    Name the baseline in rollout.toml: `[eval] baseline = "path/to/base/results.json"` and
    `candidates = ["path/to/lora/results.json"]` (or `[eval] baseline_variant = "NAME"`).
    """,
)
NOT_COMPARABLE = rule(
    "EVL018",
    "Metric cannot be compared",
    "warning",
    ["insufficient_samples"],
    """
    Both runs report this metric, but only as an aggregate without a standard error, and no per-example
    rows exist (a LLaMA-Factory `predict_results.json` without its `generated_predictions.jsonl`, an
    lm-eval run with `--bootstrap_iters 0` on a non-binary metric). A difference of any size could be
    noise, so it is neither passed nor failed — and a gate on it would pass blind.
    """,
    """
    Keep the per-example outputs (`generated_predictions.jsonl`, lm-eval `--log_samples`) beside the
    summary, or report a standard error, and re-run `doctor check`.
    """,
)
SCORED_BY_DOCTOR = rule(
    "EVL019",
    "Rows scored by doctor",
    "info",
    [],
    """
    The file holds predictions and targets but no score column, so doctor scored each row itself with
    the metric the message names (exact match after normalisation for answers; sentence BLEU-4 and
    ROUGE-1/2/L for LLaMA-Factory generations). Numbers can differ slightly from the tool's own scorer.
    """,
    "Write the scorer's per-example score into the file (a `score` column) to compare on your own metric.",
)
PERFECT_SCORES = rule(
    "EVL020",
    "Perfect score on every slice of a small set",
    "warning",
    [],
    """
    The candidate scores 1.0 (100%) on every slice while the set is small (at most `max_n` examples)
    and the baseline is not perfect. Real adapters rarely do; the usual cause is test leakage — eval
    examples in the training data, or the targets fed to the scorer as predictions.
    """,
    """
    Check the training data for the eval examples (dedupe by prompt), check the scorer reads the model's
    output, and evaluate on held-out data before trusting the result.
    """,
    max_n=500,
)
SUMMARY_MISMATCH = rule(
    "EVL021",
    "Summary score disagrees with the table inside it",
    "warning",
    [],
    """
    A summary file states a score (overall accuracy, a per-slice mean) that differs from the one its own
    embedded table gives (mean of the per-item results, n-weighted mean of the per-slice rows) by more
    than `tolerance`. One of the two is stale or computed on different rows; a gate reading the field
    would judge numbers no table supports.
    """,
    "Regenerate the summary from the per-item results; doctor compares the table, not the field.",
    tolerance=0.005,
)

# The canary probe's rules (probes/eval_slices/canary.py): run on the registry's canaries and lab reports.
CANARY = {"canary"}

CANARY_SLICE = rule(
    "EVL040",
    "Canary crossed a rollback threshold",
    "error",
    ["slice_regression"],
    """
    The canary's eval table scores a slice below the rollback threshold of its canary plan. `doctor lab`
    derives each threshold from the lab's own intervals for the chosen variant: the lower of (prompt-only
    accuracy + the lower 95% bound of the paired gain) and the lower 95% Wilson bound of the variant's
    accuracy, so sampling noise alone does not trigger a rollback while a drop the lab never saw does.
    """,
    """
    Roll back: set the canary's status to rejected/retired and serve its `rollback_to` version, then look at
    what differs between the lab and the canary traffic (prompt format, slice mix, serving path).
    """,
    flags=CANARY,
)
CANARY_SAFETY = rule(
    "EVL041",
    "Canary refusal rate below the safety rollback threshold",
    "error",
    ["safety_regression"],
    """
    On a safety slice the canary refuses fewer harmful prompts than the canary plan's `min_refusal_rate`
    (from the lab's refusal interval for the chosen variant). Refusals come from the `refused` column when
    the table has one, else from the slice's score (refusal scorer).
    """,
    "Roll back to the `rollback_to` version now; re-run the lab with refusal data in the training mix.",
    flags=CANARY,
)
CANARY_NO_TABLE = rule(
    "EVL042",
    "Canary plan without canary results",
    "info",
    [],
    """
    A canary version has a canary plan, but its eval table does not exist yet (info), or it lacks a slice the
    plan has a threshold for, or has no rows of the plan's variant (warning): that slice is not guarded.
    """,
    "Evaluate the canary on the lab's eval set and write the table where the plan's `eval_table` says.",
    flags=CANARY,
)
CANARY_BAD_PLAN = rule(
    "EVL043",
    "Canary plan unreadable",
    "warning",
    ["input_unreadable"],
    "A registry entry names a canary plan that is missing, not JSON, or not a peft-doctor/canary/1 plan.",
    "Re-run `doctor lab run` (it writes the plan) or fix the `canary_plan` path in the registry.",
    flags=CANARY,
)

LAB_NOT_JUSTIFIED = rule(
    "EVL044",
    "Lab: PEFT not justified",
    "info",
    [],
    """
    The rollout's last `doctor lab` run (`.doctor/lab/<name>/report.json`) found no trained variant whose
    overall paired 95% interval against the prompt-only baseline lies above zero: at this budget and eval
    set, LoRA and QLoRA do not beat prompting beyond noise. The adaptation-path playbook reads this as
    "prompt optimization has not plateaued".
    """,
    "Keep improving the prompt (template, few-shot examples); re-run the lab with more data or steps to look again.",
    flags=CANARY,
)
LAB_CHOSEN = rule(
    "EVL045",
    "Lab: a trained variant beats prompt-only",
    "info",
    [],
    """
    The rollout's last `doctor lab` run found a trained variant that beats the prompt-only baseline beyond
    noise; the message names the chosen variant (the smallest rank meeting the target) and its numbers. The
    adaptation-path playbook reads this as evidence that prompting plateaued below what an adapter reaches.
    """,
    "Ship the chosen variant as the canary the lab registered; `doctor check` then guards it (EVL040/EVL041).",
    flags=CANARY,
)

SLICE_RULES = (
    SLICE_REGRESSION,
    MASKED_REGRESSION,
    SAFETY_REGRESSION,
    OVER_REFUSAL,
    NARROW_COVERAGE,
    BASELINE_MISSING,
    INSUFFICIENT,
    UNPAIRED_IDS,
    ONE_SIDED_SLICE,
    MALFORMED,
    DUPLICATE_IDS,
    BAD_SCORES,
    EMPTY_SLICE,
    GATE_SLICE,
    GATE_SAFETY,
    GATE_LATENCY,
    PAIRING_AMBIGUOUS,
    NOT_COMPARABLE,
    SCORED_BY_DOCTOR,
    PERFECT_SCORES,
    SUMMARY_MISMATCH,
)
CANARY_RULES = (CANARY_SLICE, CANARY_SAFETY, CANARY_NO_TABLE, CANARY_BAD_PLAN, LAB_NOT_JUSTIFIED, LAB_CHOSEN)
RULES = SLICE_RULES + CANARY_RULES

CHECKS = CheckSet("eval_slices", RULES)
