"""Rule table of the training family: TRN### (logs) and CFG### (training configs). Tunables are rule
params (override in settings: [thresholds.TRN002] z = 10). The checks that raise them are registered in
`CHECKS` beside their logic: logchecks.py (TRN, on a prepared log), cfgrules.py (CFG, on a recipe).

Flags:
- "watch_once": `doctor watch` reports the rule once per log, however its locator moves while the run
  keeps writing (the first spike's step, the line of a skipped entry); other rules once per locator.
"""

from __future__ import annotations

from doctor.core.checks import CheckSet
from doctor.core.rules import rule

_LR_FIX = "Lower the learning rate (x0.1-x0.5), keep max_grad_norm at 0.3-1.0 and warm up (warmup_ratio 0.03)."

NON_FINITE = rule(
    "TRN001",
    "Non-finite loss or gradient norm",
    "error",
    ["non_finite"],
    """
    The loss or the gradient norm became NaN or infinite. HF Trainer's logging_nan_inf_filter drops
    non-finite step losses from the logged average, so a window that was entirely NaN is logged as
    loss 0.0 while grad_norm shows NaN: that masked signature counts too. Once the weights hold NaN the
    run is lost from that step on. On the eval side: eval_loss NaN/Infinity at some evaluations (or
    best_metric stored as NaN/Infinity) while the train loss looks healthy: evaluation is broken (fp16
    overflow in eval, an empty or fully masked eval set) and best-checkpoint selection with it.
    """,
    """
    Lower the learning rate (x0.1–x0.5), enable clipping (max_grad_norm 0.3–1.0), add warmup
    (warmup_ratio 0.03), and for QLoRA use bnb_4bit_compute_dtype=bfloat16 with bf16=True. Restart from
    the last checkpoint before the first bad step.
    """,
)
LOSS_SPIKE = rule(
    "TRN002",
    "Loss spike",
    "warning",
    ["loss_spike"],
    """
    A logged loss far above the robust level of the points just before it (log scale): a z-score of
    the distance to the median of the previous `level_window` points, in units of the typical
    step-to-step change over the previous `window` points (the current point excluded, OLMo-style;
    robust to the loss's own downward trend), inactive until `min_history` points exist.
    With group_by_length the batches differ in length, so periodic
    spikes are expected and the thresholds are multiplied by `relax`.
    """,
    "Spikes precede divergence: lower the learning rate, clip gradients (max_grad_norm 0.3), check the data "
    "around the spike for malformed samples.",
    window=64,
    level_window=8,
    min_history=20,
    z=7.0,
    min_rel=0.5,
    floor_rel=0.02,
    relax=2.0,
    flags={"watch_once"},
)
DIVERGENCE = rule(
    "TRN003",
    "Loss diverging",
    "error",
    ["divergence"],
    """
    The smoothed loss (rolling median of `window` points) rose well above its best value (x`rise`) or
    above its starting level (+`start_margin` plus `start_noise` x the start estimate's noise), and
    stayed there for `sustain` points: training is undoing itself, typically a learning rate too high
    for the method or an fp16 overflow. The best value counts from when the early transient has
    settled (the smoothed loss stops rising over a window), so a fine-tune from a strong base that
    starts low, bumps up and settles is not flagged; x`jump` over the start catches immediate blow-ups.
    For preference trainers (DPO-style losses are bounded and noisy near their floor) the rise from the
    best is x`pref_rise`. Short runs (fewer points than TRN009 needs): a monotonic rise to x`short_rise`
    its first value, or a jump of x`short_jump` between two logs that stays there, with the thin
    evidence said.
    """,
    _LR_FIX + " Restart from a checkpoint before the rise.",
    window=15,
    rise=1.3,
    start_margin=1.0,
    start_noise=2.0,
    jump=3.0,
    min_abs=0.02,
    sustain=8,
    min_points=30,
    short_min=3,
    short_rise=3.0,
    short_jump=3.0,
    short_dip=0.02,
    pref_rise=2.0,
)
GRAD_EXPLOSION = rule(
    "TRN004",
    "Gradient norm explosion",
    "warning",
    ["grad_explosion"],
    """
    The gradient norm jumped far above its own recent history (x`ratio` and a log-scale z-score above
    `z` against the rolling median/MAD, or x`extreme` over the rolling median whatever the noise: an
    unstable run's own noise is so large that no z-score fires), or grew steadily: the rolling median of
    `growth_window` points stayed above x`growth` its early level (median of the first `growth_window`
    points after the first `growth_skip`, which warmup makes unusual) for `growth_sustain` points. A
    gradual explosion carries the rolling median with it, so only the growth test sees it; a healthy LoRA
    run's early rise (lora_B starts at 0, the norm grows x2-x10) stays well below x`growth`. Or the norm
    sat above `clip_factor` x max_grad_norm repeatedly. Gradient spikes usually precede loss spikes.
    """,
    "Clip gradients (max_grad_norm 0.3-1.0), lower the learning rate, and look for bad samples at the flagged steps.",
    window=64,
    min_history=20,
    z=8.0,
    ratio=8.0,
    extreme=20.0,
    floor_log=0.05,
    clip_factor=25.0,
    clip_min_count=3,
    growth=30.0,
    growth_window=10,
    growth_skip=3,
    growth_sustain=5,
    flags={"watch_once"},
)
NOT_LEARNING = rule(
    "TRN005",
    "Loss not decreasing",
    "error",
    ["not_learning"],
    """
    The loss is exactly 0.0 for `zero_run` logged steps in a row with a finite gradient norm (labels all
    masked, a packing/attention bug); frozen at exactly one non-zero value (>= `frozen_min`) for
    `frozen_run` logs in a row; never below its starting level over the whole run (`never_min` points
    or more, within `never_tol`; short runs included: a healthy loss drops within its first logs); or
    flat: the median of the last 10% of points is within `flat_rel` of the first 10%. Not applied to RL
    trainers (GRPO/PPO), whose loss is no learning signal and is normally near 0.
    """,
    "Check that labels are not all -100, that the adapter's lora_B receives gradients (input grads with "
    "gradient checkpointing on k-bit models), and that the learning rate is not 0.",
    zero_run=3,
    flat_rel=0.01,
    min_points=20,
    frozen_run=10,
    frozen_min=1e-3,
    never_min=5,
    never_tol=0.0,
)
OVERFITTING = rule(
    "TRN006",
    "Eval loss rising while train loss falls",
    "warning",
    ["overfitting"],
    """
    The eval loss rose more than `rise` above its best while the train loss kept falling, and the best
    eval point lies well before the last (at least `gap` of the evaluated span); or it rose for
    `consecutive` evaluations in a row after its minimum by at least `mild_rise` (a warning, an error
    from `error_rise`): the adapter is memorising the training set. The message names the best step and
    the checkpoint to keep. A train loss that flattened (within `train_tol`) still counts as not rising;
    one that rose more is divergence, not overfitting.
    """,
    "Use the best checkpoint (load_best_model_at_end), train fewer epochs, add data, or raise lora_dropout.",
    rise=0.05,
    gap=0.2,
    min_evals=3,
    consecutive=3,
    mild_rise=0.02,
    error_rise=0.25,
    train_tol=0.03,
)
# The alarm levels TRN007 (the logged LR) and CFG001 (the recipe's LR) both judge against, by stage, method
# and optimizer (probes/training/lrranges.py); each rule keeps its own copy, so each can be tuned alone.
_LR_ALARMS = dict(
    lora_max=2e-3,
    qlora_max=2e-3,
    dpo_max=5e-5,
    full_max=5e-4,
    pt_max=1e-2,
    dpo_lora_max=5e-4,
    rl_max=2e-5,
    rl_lora_max=5e-4,
    muon_max=0.2,
    sgd_max=1.0,
)
LR_TOO_HIGH = rule(
    "TRN007",
    "Learning rate above the usual range",
    "warning",
    ["lr_too_high"],
    """
    The peak logged learning rate exceeds the alarm level (about 10x the top of the usual range) for what
    the run trains, judged by stage, method and optimizer (probes/training/lrranges.py): SFT with
    LoRA/QLoRA ~5e-6..2e-4 (`lora_max`, `qlora_max`), full SFT ~5e-6..5e-5 (`full_max`), pretraining
    (`pt_max`), DPO-style preference ~5e-7..5e-6 full (`dpo_max`) / ~5e-6..5e-5 LoRA (`dpo_lora_max`),
    PPO/GRPO ~1e-7..1e-6 full (`rl_max`) / ~1e-6..5e-5 LoRA (`rl_lora_max`), Muon ~0.02 (`muon_max`), SGD
    (`sgd_max`). The stage comes from the recipe, else from the trainer the log's keys show. Too high an
    LR gives NaN within tens of steps.
    """,
    _LR_FIX,
    **_LR_ALARMS,
)
LR_SCHEDULE = rule(
    "TRN008",
    "Learning-rate schedule anomaly",
    "warning",
    ["lr_schedule"],
    """
    The logged learning rate shows a schedule problem: stuck at 0 (the schedule ended before the run, or
    lr=0), no warmup at a high learning rate, or a decaying schedule that never decays.
    """,
    "Check lr_scheduler_type, warmup_ratio/warmup_steps and max_steps against the run length.",
    zero_frac=0.2,
    zero_min=3,
    warmup_lr=2e-4,
    warmup_first_step=1,
)
TOO_SHORT = rule(
    "TRN009",
    "Run too short to judge",
    "info",
    ["run_too_short"],
    """
    Fewer than `min_points` loss points were logged, so the spike, divergence and plateau detectors
    (which need history) did not run. Non-finite values are still checked.
    """,
    "Log more often (logging_steps) or let the run go longer before judging it.",
    min_points=20,
)
PARTLY_UNREADABLE = rule(
    "TRN010",
    "Training log partly unreadable",
    "warning",
    ["input_unreadable"],
    """
    Some entries of the log could not be used (text garbage between lines, strings where numbers belong,
    entries without a step, an unfinished last line). The rest was analysed.
    """,
    "Find what else writes to the log file (mixed stdout, two processes), and log numbers as numbers.",
    flags={"watch_once"},
)
STEP_ORDER = rule(
    "TRN011",
    "Steps repeat or go backwards",
    "warning",
    ["input_unreadable"],
    """
    The log holds negative steps, or steps that repeat or go backwards: usually a run resumed from a
    checkpoint appending to the same log, or two runs in one folder. The latest value of a step is kept.
    """,
    "Give each run its own output_dir, or accept the resumed run's values (the latest were kept).",
    flags={"watch_once"},
)
MANY_EPOCHS = rule(
    "TRN012",
    "Many epochs over a tiny dataset",
    "warning",
    ["overfitting"],
    "The run went over its data `epochs_max` times or more (a few batches per epoch): every example is "
    "seen hundreds of times, so the adapter memorises them; the train loss going to ~0 proves nothing.",
    "Add data, or train 1-5 epochs and judge on a held-out eval set (eval_strategy + load_best_model_at_end).",
    epochs_max=100,
)
PREF_DEGENERATE = rule(
    "TRN013",
    "Preference loss collapsed: degenerate fit",
    "error",
    ["overfitting"],
    """
    DPO-style loss (DPO, IPO, ORPO, KTO, CPO/SimPO) at about 0 (tail median <= `loss_max`) while the reward
    margin explodes (>= `margin_max`) or the rejected log-probs run off to large negatives (falling by
    `rejected_drop` nats or more): the policy satisfies the objective by making rejected answers
    impossible, not by preferring chosen ones. Generations degrade.
    """,
    "Lower the learning rate (preference runs use ~5e-7..5e-6 full, ~5e-6..5e-5 LoRA), raise beta, train "
    "fewer steps, and check the pairs for a trivial difference.",
    min_points=5,
    loss_max=0.02,
    margin_max=15.0,
    rejected_drop=150.0,
)
PREF_CHOSEN_FALLING = rule(
    "TRN014",
    "Chosen log-probs falling with the rejected ones",
    "warning",
    ["overfitting"],
    "logps/chosen fell by `chosen_drop` nats and `chosen_rel` of its start while logps/rejected fell too: "
    "the margin grows because both become unlikely (likelihood displacement), a known DPO failure.",
    "Add an SFT term (rpo_alpha in TRL's DPOConfig, or ORPO/SimPO-style losses), lower the LR, or raise beta.",
    min_points=5,
    chosen_drop=20.0,
    chosen_rel=0.2,
)
PREF_ACC_SATURATED = rule(
    "TRN015",
    "Reward accuracy saturated early",
    "warning",
    ["overfitting"],
    "rewards/accuracies reached `level` within the first `within` logs (or `within_frac` of them) and "
    "stayed there: the chosen/rejected pairs are trivially separable (leakage, a swapped column, a surface "
    "feature such as length) and the model learns that feature.",
    "Inspect the pairs (length, formatting, duplicated prompts between chosen and rejected); shuffle/dedupe.",
    min_points=5,
    level=0.999,
    within=3,
    within_frac=0.1,
    hold=0.9,
)
RL_KL_BLOWUP = rule(
    "TRN016",
    "KL to the reference blowing up",
    "error",
    ["divergence"],
    "The logged KL to the reference policy (GRPO/KTO `kl`, PPO `objective/kl`) rose past `kl_max` "
    "(`ppo_max` for PPO's sequence-level KL) and x`ratio` its early level (rolling median): the policy is "
    "running away from the reference, usually reward hacking or too high a learning rate.",
    "Lower the learning rate, raise the KL coefficient (beta / kl_coef), and restart from a checkpoint "
    "before the rise.",
    min_points=5,
    kl_max=1.0,
    ppo_max=50.0,
    ratio=20.0,
)
RL_REWARD_COLLAPSE = rule(
    "TRN017",
    "Reward collapsed",
    "error",
    ["divergence"],
    "The mean reward (GRPO `reward`, PPO `objective/scores`/`objective/rlhf_reward`) rose, then fell back "
    "below its starting level (rolling medians, by more than `below` x the gain and `min_drop` x its "
    "step-to-step noise): the policy lost what it had learned (over-optimisation, broken generation).",
    "Restart from the checkpoint at the best reward with a lower learning rate or a stronger KL penalty; "
    "check completions around the collapse.",
    min_points=8,
    min_gain=3.0,
    below=0.0,
    min_drop=3.0,
)

CFG_LR = rule(
    "CFG001",
    "Configured learning rate above the usual range",
    "warning",
    ["lr_too_high"],
    "The configured learning rate exceeds the alarm level (about 10x the top of the usual range) for what the "
    "recipe trains: its stage (pt, sft, rm, dpo/orpo/kto/simpo, ppo/grpo), method (LoRA/QLoRA vs full) and "
    "optimizer family (AdamW, Muon, SGD, Lion); the message states the range used and its source (see TRN007).",
    _LR_FIX,
    **_LR_ALARMS,
)
CFG_WARMUP = rule(
    "CFG002",
    "No warmup at a high learning rate",
    "warning",
    ["lr_schedule"],
    "warmup_ratio and warmup_steps are 0 while the learning rate is above `min_lr`: the first updates "
    "hit randomly initialised lora_B/A at full speed.",
    "Set warmup_ratio 0.03 (the qlora default) or warmup_steps ~ 3% of the run.",
    min_lr=2e-4,
)
CFG_PRECISION = rule(
    "CFG003",
    "fp16 precision risk",
    "warning",
    ["precision_risk"],
    """
    QLoRA computing in float16 (bnb_4bit_compute_dtype=float16 or fp16=True) overflows: losses like
    0.68, 1.13, 31.45, then 0.0 (trl#618); the qlora authors found fp16 unstable. fp16 AMP without 4-bit
    is a milder risk (info).
    """,
    "Use bnb_4bit_compute_dtype=bfloat16 with bf16=True (fp16=False) on Ampere or newer GPUs.",
)
CFG_QUANT = rule(
    "CFG004",
    "4-bit quantization differs from the QLoRA recipe",
    "warning",
    ["quantization_config"],
    "QLoRA expects 4-bit NormalFloat (bnb_4bit_quant_type=nf4) with double quantization; fp4 or no double "
    "quantization loses accuracy or memory.",
    "Set bnb_4bit_quant_type=nf4 and bnb_4bit_use_double_quant=True.",
)
CFG_DTYPE = rule(
    "CFG005",
    "Compute dtype does not match training precision",
    "warning",
    ["quantization_config", "precision_risk"],
    "bnb_4bit_compute_dtype disagrees with the AMP mode (e.g. float16 compute with bf16=True): casts on "
    "every layer and fp16 overflow where bf16 was intended.",
    "Make bnb_4bit_compute_dtype match the AMP mode: bfloat16 with bf16=True.",
)
CFG_QUANT_ADAPTER = rule(
    "CFG006",
    "Quantized loading inconsistent with the adapter",
    "error",
    ["quantization_config"],
    "Loading in 4/8-bit without an adapter cannot train; adapter=qlora needs load_in_4bit and not 8-bit "
    "(axolotl's validation).",
    "For QLoRA set adapter: qlora with load_in_4bit: true and load_in_8bit: false.",
)
CFG_NO_CLIP = rule(
    "CFG007",
    "Gradient clipping disabled",
    "info",
    ["grad_explosion"],
    "max_grad_norm is 0 or null: nothing bounds an exploding update (qlora uses 0.3).",
    "Set max_grad_norm 0.3-1.0.",
)
CFG_PICKLE_CODE = rule(
    "CFG008",
    "training_args.bin would run code when loaded",
    "error",
    ["unsafe_format"],
    """
    training_args.bin is a pickle; doctor reads it with a restricted unpickler that never imports or calls
    anything. This one calls functions a TrainingArguments pickle never calls (os.system, eval,
    subprocess, ...): `torch.load(..., weights_only=False)` or a Trainer resuming from this checkpoint
    would run them. Nothing was run. A call to an unknown (but not known-dangerous) function is a warning.
    """,
    "Do not load this checkpoint. Find out who wrote it; retrain or take training_args.json from a trusted "
    "copy, and prefer safetensors / JSON for anything shared.",
)
CFG_NOT_RUN = rule(
    "CFG009",
    "Config rules could not run",
    "info",
    [],
    """
    A training log was found but no training recipe for it (training_args.json, a readable
    training_args.bin, an axolotl / LLaMA-Factory YAML, or the rollout manifest's [recipe]), so the
    learning-rate, warmup, precision, quantization and clipping rules (CFG001-CFG007) did not run.
    """,
    "Keep training_args.json / training_args.bin beside the log (HF Trainer writes training_args.bin into "
    "every checkpoint-N/), or record the recipe in rollout.toml [recipe].",
)

LOG_RULES = (
    NON_FINITE,
    LOSS_SPIKE,
    DIVERGENCE,
    GRAD_EXPLOSION,
    NOT_LEARNING,
    OVERFITTING,
    LR_TOO_HIGH,
    LR_SCHEDULE,
    TOO_SHORT,
    PARTLY_UNREADABLE,
    STEP_ORDER,
    MANY_EPOCHS,
    PREF_DEGENERATE,
    PREF_CHOSEN_FALLING,
    PREF_ACC_SATURATED,
    RL_KL_BLOWUP,
    RL_REWARD_COLLAPSE,
)
CFG_RULES = (
    CFG_LR,
    CFG_WARMUP,
    CFG_PRECISION,
    CFG_QUANT,
    CFG_DTYPE,
    CFG_QUANT_ADAPTER,
    CFG_NO_CLIP,
    CFG_PICKLE_CODE,
    CFG_NOT_RUN,
)
RULES = LOG_RULES + CFG_RULES
CHECKS = CheckSet("training", RULES)
