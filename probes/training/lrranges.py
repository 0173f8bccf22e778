"""The usual learning-rate range of a recipe, by training stage, method and optimizer family, and the
alarm level CFG001 / TRN007 judge it against (a settings-tunable param, about 10x the top of the range).

Ranges are what working recipes use; each row names where it comes from:
- sft, LoRA/QLoRA  5e-6..2e-4  qlora paper/defaults 2e-4; LLaMA-Factory examples/train_lora (1e-4);
                                axolotl LoRA/QLoRA examples (2e-4)
- sft, full        5e-6..5e-5  HF TrainingArguments default 5e-5; TRL SFTConfig 2e-5; LLaMA-Factory
                                examples/train_full (1e-5)
- pt, full         1e-5..1e-3  continued pretraining ~1e-5..1e-4, small models from scratch 3e-4..1e-3
- rm (reward model) as sft     LLaMA-Factory examples/train_lora reward (1e-4): a classifier head, not DPO
- dpo/ipo/orpo/kto/simpo/cpo, full  5e-7..5e-6  TRL DPOConfig default 1e-6; zephyr DPO 5e-7
- the same, LoRA   5e-6..5e-5  LLaMA-Factory examples/train_lora dpo/kto (5e-6)
- ppo/grpo/rloo, full  1e-7..1e-6  TRL GRPOConfig default 1e-6
- the same, LoRA   1e-6..5e-5  LLaMA-Factory ppo example (1e-5); unsloth GRPO notebooks (5e-6)
Optimizer families change the scale whatever the stage: Muon ~0.005..0.05 (its reference
implementation's default 0.02), SGD ~1e-3..1e-1, Lion ~3-10x below AdamW (its paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFERENCE = {"dpo", "ipo", "orpo", "kto", "simpo", "cpo"}
RL = {"ppo", "grpo", "rloo"}


@dataclass(frozen=True)
class LrRange:
    lo: float
    hi: float
    alarm: float
    what: str  # e.g. "DPO-style preference, LoRA"
    source: str

    def says(self) -> str:
        return f"usual range {_e(self.lo)}..{_e(self.hi)}: {self.source}"


def _e(x: float) -> str:
    m, _, e = f"{x:.0e}".partition("e")
    return f"{m}e{int(e)}"


def stage_of(recipe: dict[str, Any], trainer: str = "sft") -> str:
    """pt | sft | rm | dpo-style name | rl name: the recipe's stage, else the trainer the log shows."""
    st = str(recipe.get("stage") or "").lower()
    if st:
        return st
    return trainer if trainer in PREFERENCE | RL else "sft"


def method_of(recipe: dict[str, Any]) -> str:
    """lora | qlora | full. A recipe that names no adapter is judged as LoRA (the permissive choice)."""
    m = str(recipe.get("method") or "").lower()
    if m in ("lora", "qlora", "full"):
        return m
    return "qlora" if recipe.get("load_in_4bit") else "lora"


def optimizer_family(optim: Any) -> str:
    o = str(optim or "").lower()
    for fam in ("muon", "lion", "sgd", "adafactor"):
        if fam in o:
            return fam
    return "adam"


def lr_range(recipe: dict[str, Any], param, rule, trainer: str = "sft") -> LrRange:
    """The range and alarm for this recipe; `param(rule, name)` reads the rule's tunable alarm levels."""
    stage, method, opt = stage_of(recipe, trainer), method_of(recipe), optimizer_family(recipe.get("optim"))
    adapter = method in ("lora", "qlora")
    if opt == "muon":
        return LrRange(5e-3, 5e-2, param(rule, "muon_max"), "the Muon optimizer", "Muon's reference default 0.02")
    if opt == "sgd":
        return LrRange(1e-3, 1e-1, param(rule, "sgd_max"), "SGD", "SGD fine-tuning practice")
    if stage in PREFERENCE:
        if adapter:
            r = LrRange(
                5e-6,
                5e-5,
                param(rule, "dpo_lora_max"),
                f"{stage.upper()} with LoRA",
                "LLaMA-Factory LoRA DPO/KTO examples 5e-6",
            )
        else:
            r = LrRange(
                5e-7, 5e-6, param(rule, "dpo_max"), f"{stage.upper()} full fine-tuning", "TRL DPOConfig default 1e-6"
            )
    elif stage in RL:
        if adapter:
            r = LrRange(
                1e-6, 5e-5, param(rule, "rl_lora_max"), f"{stage.upper()} with LoRA", "LLaMA-Factory PPO example 1e-5"
            )
        else:
            r = LrRange(
                1e-7, 1e-6, param(rule, "rl_max"), f"{stage.upper()} full fine-tuning", "TRL GRPOConfig default 1e-6"
            )
    elif stage == "pt" and not adapter:
        r = LrRange(
            1e-5, 1e-3, param(rule, "pt_max"), "pretraining (full)", "continued/small-model pretraining practice"
        )
    elif adapter:
        name = "QLoRA" if method == "qlora" else "LoRA"
        what = {"rm": f"reward-model training with {name}", "pt": f"pretraining with {name}"}.get(stage, f"{name} SFT")
        key = "qlora_max" if method == "qlora" else "lora_max"
        r = LrRange(5e-6, 2e-4, param(rule, key), what, "qlora default 2e-4; LLaMA-Factory/axolotl LoRA examples")
    else:
        what = "reward-model training (full)" if stage == "rm" else "full fine-tuning SFT"
        r = LrRange(5e-6, 5e-5, param(rule, "full_max"), what, "HF Trainer default 5e-5; TRL SFTConfig 2e-5")
    if opt == "lion":
        return LrRange(r.lo / 10, r.hi / 3, r.alarm / 3, r.what + " (Lion)", r.source + "; Lion ~3-10x below AdamW")
    return r
