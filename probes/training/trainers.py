"""Which trainer wrote a log, recognised by the keys it logs (TRL's preference and RL trainers, plain
SFT otherwise), and the trainer-specific metrics readers keep for the preference/RL detectors.

Keys (TRL docs "Logging" and the trainers' `log` calls; LLaMA-Factory logs the same through TRL):
- DPO / IPO: rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen,
  logps/rejected, logits/chosen, logits/rejected
- ORPO: the above plus log_odds_ratio, log_odds_chosen, nll_loss
- CPO / SimPO (CPOTrainer): rewards/*, logps/*, nll_loss (no log_odds_*)
- KTO: rewards/*, logps/*, kl
- GRPO (and the GRPO-style RLOO): reward, reward_std, rewards/<func>/mean, completions/mean_length (older:
  completion_length), frac_reward_zero_std, kl, entropy, clip_ratio/*
- PPO / old RLOO: objective/kl, objective/entropy, objective/rlhf_reward, objective/scores,
  policy/approxkl_avg, loss/policy_avg, val/*; older PPOTrainer: ppo/*, env/reward_mean
"""

from __future__ import annotations

PREFERENCE = ("dpo", "orpo", "kto", "cpo")
RL = ("grpo", "ppo")

# train-side keys kept as extra series (numbers only); prefixes cover per-function reward keys
EXTRA_KEYS = frozenset(
    {
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "log_odds_ratio",
        "log_odds_chosen",
        "nll_loss",
        "kl",
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "completion_length",
        "completions/mean_length",
        "objective/kl",
        "objective/rlhf_reward",
        "objective/scores",
        "objective/entropy",
        "policy/approxkl_avg",
        "loss/policy_avg",
        "env/reward_mean",
        "ppo/mean_scores",
        "objective/kl_coef",
        "accuracy",
    }
)


def wanted(key: str) -> bool:
    return key in EXTRA_KEYS or (key.startswith("rewards/") and key.endswith("/mean"))


def kind_of(keys: set[str] | frozenset[str]) -> str:
    """'dpo' | 'orpo' | 'cpo' | 'kto' | 'grpo' | 'ppo' | 'sft' from the logged train keys."""
    k = set(keys)
    if k & {"objective/kl", "objective/rlhf_reward", "objective/scores", "policy/approxkl_avg", "env/reward_mean"}:
        return "ppo"
    if {"reward", "reward_std"} <= k or k & {"completions/mean_length", "frac_reward_zero_std", "completion_length"}:
        return "grpo"
    pref = bool(k & {"rewards/chosen", "rewards/margins", "logps/rejected", "logps/chosen"})
    if pref:
        if k & {"log_odds_ratio", "log_odds_chosen"}:
            return "orpo"
        if "kl" in k:
            return "kto"
        if "nll_loss" in k:
            return "cpo"
        return "dpo"
    return "sft"


def family(kind: str) -> str:
    """'preference' | 'rl' | 'sft'."""
    return "preference" if kind in PREFERENCE else "rl" if kind in RL else "sft"


def attach(s, metrics: dict) -> None:
    """Trainer name and metrics for readers holding whole per-tag series (TensorBoard, MLflow): tags such
    as `train/rewards/chosen` or `reward` -> `s.extra`, and `s.trainer` from their names."""
    import numpy as np

    from probes.training.series import eval_arrays

    picked = {}
    for tag, (st, va) in metrics.items():
        key = tag.removeprefix("train/")
        if wanted(key) and key not in picked:
            picked[key] = (st, va)
    s.trainer = kind_of(set(picked))
    for key, (st, va) in picked.items():
        st, va = np.asarray(st, dtype=np.int64), np.asarray(va, dtype=np.float64)
        s.extra[key] = eval_arrays(list(zip(st.tolist(), va.tolist())))
