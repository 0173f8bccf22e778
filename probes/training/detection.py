"""What a detector found: a structured `Kind` (which signature, not which rule) and the numbers behind it.

The TRN checks (probes/training/logchecks.py) map kinds to rules; nothing tells detections apart by their
message text. No numpy here: watch, the bench and the checks import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """One failure signature a detector can report (several kinds may make up one rule)."""

    NON_FINITE = "non_finite"  # train loss / grad_norm NaN or inf (or NaN masked as loss 0.0)
    EVAL_NON_FINITE = "eval_non_finite"  # eval loss / best_metric NaN or inf
    LOSS_SPIKE = "loss_spike"  # robust z-score spike over the loss's own history
    SHORT_SPIKE = "short_spike"  # short run: one jump that came back
    DIVERGENCE = "divergence"  # smoothed loss held above its best / its start
    SHORT_RISE = "short_rise"  # short run: monotonic rise
    SHORT_JUMP = "short_jump"  # short run: one jump that stayed
    GRAD_SPIKE = "grad_spike"  # grad_norm far above its rolling history
    GRAD_GROWTH = "grad_growth"  # grad_norm's rolling median growing steadily
    GRAD_OVER_CLIP = "grad_over_clip"  # grad_norm repeatedly far above max_grad_norm
    LOSS_ZERO = "loss_zero"  # loss exactly 0.0 with a finite grad_norm
    LOSS_FLAT = "loss_flat"  # end of the run at the level of its start
    LOSS_FROZEN = "loss_frozen"  # one non-zero value repeated exactly
    LOSS_NEVER_BELOW = "loss_never_below"  # never below its starting level
    EVAL_RISE = "eval_rise"  # eval loss well above its best while train loss fell
    EVAL_RISE_STREAK = "eval_rise_streak"  # eval loss rising evaluation after evaluation
    LR_PEAK_HIGH = "lr_peak_high"  # peak logged learning rate above the alarm level
    LR_ALL_ZERO = "lr_all_zero"  # learning rate 0 at every logged step
    LR_STUCK_ZERO = "lr_stuck_zero"  # schedule ended before the run
    LR_NO_WARMUP = "lr_no_warmup"  # high learning rate from the first step
    LR_NO_DECAY = "lr_no_decay"  # a decaying schedule that never decayed
    MANY_EPOCHS = "many_epochs"  # hundreds of epochs over a tiny dataset
    PREF_DEGENERATE = "pref_degenerate"  # preference loss ~0 with exploding margins
    PREF_CHOSEN_FALLING = "pref_chosen_falling"  # chosen log-probs falling with the rejected
    PREF_ACC_SATURATED = "pref_accuracy_saturated"  # reward accuracy at 1.0 from the start
    RL_KL_BLOWUP = "rl_kl_blowup"  # KL to the reference running away
    RL_REWARD_COLLAPSE = "rl_reward_collapse"  # reward rose, then fell below its start


@dataclass
class Detection:
    kind: Kind
    step: int
    message: str
    marks: list[int] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None
