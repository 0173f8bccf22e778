"""The CFG checks: one per rule. CFG001-CFG007 judge a normalized recipe (see recipe.py) — a config
file's or the manifest's [recipe] — prepared as a `RecipeSubject`; CFG009 (scope "rollout") says when a
training log had no recipe for them to judge. training_args.bin's own rules (CFG008, DOC004) are in
argschecks.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import Finding, Severity
from doctor.core.probe import Rollout
from doctor.core.rules import Rule
from probes.training.lrranges import lr_range
from probes.training.readers.hf import _CKPT
from probes.training.recipe import rollout_recipe
from probes.training.rules import (
    CFG_DTYPE,
    CFG_LR,
    CFG_NO_CLIP,
    CFG_NOT_RUN,
    CFG_PRECISION,
    CFG_QUANT,
    CFG_QUANT_ADAPTER,
    CFG_WARMUP,
    CHECKS,
)

if TYPE_CHECKING:
    from doctor.core.probe import ProbeContext

# The rules judged on a recipe (CFG009 names them when none was found).
RECIPE_RULES = (CFG_LR, CFG_WARMUP, CFG_PRECISION, CFG_QUANT, CFG_DTYPE, CFG_QUANT_ADAPTER, CFG_NO_CLIP)
RECIPE_RULE_IDS = frozenset(r.id for r in RECIPE_RULES)


@dataclass
class RecipeSubject:
    """A recipe to judge and where its findings are said: a config file (locator: its flavour) or the
    manifest's [recipe] (messages prefixed "[recipe] ")."""

    path: Path
    recipe: dict[str, Any]
    param: Callable[[Rule, str], Any]
    locator: str = ""
    prefix: str = ""

    def finding(self, rule: Rule, message: str, evidence: dict[str, Any], severity: str | None = None) -> Finding:
        return rule.finding(
            self.path,
            self.prefix + message,
            locator=self.locator,
            evidence=evidence,
            severity=Severity(severity) if severity else None,
        )

    @property
    def learning_rate(self) -> float | int | None:
        lr = self.recipe.get("learning_rate")
        return lr if isinstance(lr, (int, float)) else None


def run_recipe_checks(
    subject: RecipeSubject, ctx: ProbeContext, skip: frozenset[str] | set[str] = frozenset()
) -> list[Finding]:
    """CFG001-CFG007 on one recipe, leaving out the rules in `skip` (already said on the run's config)."""
    return CHECKS.run("artifact", subject, ctx, applies=lambda r: r.id in RECIPE_RULE_IDS and r.id not in skip)


@CHECKS(CFG_LR, scope="artifact")
def lr_above_range(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    r, lr = subject.recipe, subject.learning_rate
    if lr is None:
        return []
    rng = lr_range(r, subject.param, CFG_LR)
    limit = rng.alarm
    if lr <= limit:
        return []
    return [
        subject.finding(
            CFG_LR,
            f"learning_rate {lr:g} is {lr / limit:.1f}x the alarm level {limit:g} for {rng.what} ({rng.says()})",
            {
                "learning_rate": lr,
                "threshold": limit,
                "method": r.get("method", "lora"),
                "range": [rng.lo, rng.hi],
                "judged_as": rng.what,
                "source": rng.source,
            },
            "error" if lr > 10 * limit else None,
        )
    ]


@CHECKS(CFG_WARMUP, scope="artifact")
def no_warmup(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """Only when warmup is set, and set to 0 (an unset warmup is the trainer's default)."""
    r, lr = subject.recipe, subject.learning_rate
    if lr is None:
        return []
    wr, ws = r.get("warmup_ratio"), r.get("warmup_steps")
    set_fields = [(k, v) for k, v in (("warmup_ratio", wr), ("warmup_steps", ws)) if v is not None]
    min_lr = subject.param(CFG_WARMUP, "min_lr")
    if not (lr > min_lr and set_fields and not (wr or ws)):
        return []
    return [
        subject.finding(
            CFG_WARMUP,
            f"no warmup ({', '.join(f'{k}={v}' for k, v in set_fields)}) at learning_rate {lr:g} "
            f"(threshold {min_lr:g})",
            {"learning_rate": lr, "warmup_ratio": wr, "warmup_steps": ws},
        )
    ]


@CHECKS(CFG_PRECISION, scope="artifact")
def fp16_risk(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    r = subject.recipe
    four = bool(r.get("load_in_4bit")) or r.get("method", "lora") == "qlora"
    cd = r.get("compute_dtype")
    if four and (cd == "float16" or r.get("fp16") is True):
        why = "bnb_4bit_compute_dtype=float16" if cd == "float16" else "fp16=True"
        return [
            subject.finding(
                CFG_PRECISION,
                f"QLoRA (4-bit) trained with {why}: fp16 overflow makes 4-bit runs unstable",
                {"compute_dtype": cd, "fp16": r.get("fp16"), "bf16": r.get("bf16")},
            )
        ]
    if r.get("fp16") is True:
        return [
            subject.finding(
                CFG_PRECISION,
                "fp16 AMP (fp16=True): overflow risk; bf16 is safer where supported",
                {"fp16": True},
                "info",
            )
        ]
    return []


@CHECKS(CFG_QUANT, scope="artifact")
def quantization_off_recipe(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    r = subject.recipe
    if not r.get("load_in_4bit"):
        return []
    qt, dq = r.get("quant_type"), r.get("double_quant")
    bad = []
    if qt is not None and qt != "nf4":
        bad.append(f"bnb_4bit_quant_type={qt} (QLoRA uses nf4)")
    if dq is False:
        bad.append("bnb_4bit_use_double_quant=False (QLoRA uses double quantization)")
    if not bad:
        return []
    return [subject.finding(CFG_QUANT, "4-bit config: " + "; ".join(bad), {"quant_type": qt, "double_quant": dq})]


@CHECKS(CFG_DTYPE, scope="artifact")
def compute_dtype_mismatch(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    r = subject.recipe
    cd = r.get("compute_dtype")
    if cd == "float16" and r.get("bf16") is True:
        return [
            subject.finding(
                CFG_DTYPE, "bnb_4bit_compute_dtype=float16 while bf16=True", {"compute_dtype": cd, "bf16": True}
            )
        ]
    if cd == "bfloat16" and r.get("fp16") is True:
        return [
            subject.finding(
                CFG_DTYPE, "bnb_4bit_compute_dtype=bfloat16 while fp16=True", {"compute_dtype": cd, "fp16": True}
            )
        ]
    return []


@CHECKS(CFG_QUANT_ADAPTER, scope="artifact")
def quantized_without_adapter(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    """axolotl's own validation of load_in_4bit/8bit against `adapter:`."""
    r = subject.recipe
    if r.get("flavour") != "axolotl":
        return []
    adapter = r.get("adapter")
    out = []
    if (r.get("load_in_4bit") or r.get("load_in_8bit")) and not adapter:
        out.append(
            subject.finding(
                CFG_QUANT_ADAPTER,
                "load_in_4bit/8bit without an adapter: a quantized base cannot be fully fine-tuned",
                {"adapter": None},
            )
        )
    if adapter == "qlora" and (not r.get("load_in_4bit") or r.get("load_in_8bit")):
        out.append(
            subject.finding(
                CFG_QUANT_ADAPTER,
                f"adapter: qlora with load_in_4bit={r.get('load_in_4bit')} load_in_8bit={r.get('load_in_8bit')}",
                {"load_in_4bit": r.get("load_in_4bit"), "load_in_8bit": r.get("load_in_8bit")},
            )
        )
    return out


@CHECKS(CFG_NO_CLIP, scope="artifact")
def clipping_off(subject: RecipeSubject, ctx: ProbeContext | None = None) -> list[Finding]:
    r = subject.recipe
    if "max_grad_norm" not in r or r["max_grad_norm"]:
        return []
    return [
        subject.finding(
            CFG_NO_CLIP,
            f"max_grad_norm={r['max_grad_norm']}: gradient clipping is off",
            {"max_grad_norm": r["max_grad_norm"]},
        )
    ]


@CHECKS(CFG_NOT_RUN, scope="rollout")
def recipe_missing(rollout: Rollout, ctx: ProbeContext) -> list[Finding]:
    """CFG009 (info) when the rollout has a training log but no recipe: say which rules did not run."""
    logs = [a for a in rollout.of_kind("training_log") if "superseded_by" not in a.facts]
    if not logs or set(rollout_recipe(ctx)) - {"source", "flavour"}:
        return []
    configs = rollout.of_kind("training_config")
    # Said for a run folder (Trainer checkpoints, a config that failed, a manifest), not for a log
    # file checked on its own, where no config was to be expected.
    run_folder = any(_CKPT.match(a.path.parent.name) or any(a.path.parent.glob("checkpoint-*")) for a in logs)
    if not (configs or run_folder or rollout.of_kind("manifest")):
        return []
    why = []
    for a in configs:
        if a.facts.get("unsafe_calls"):
            reason = "would run code when loaded (CFG008)"
        elif a.facts.get("recipe") is None:
            reason = "could not be read"
        else:
            reason = "holds no training settings"
        why.append(f"{a.path.name} {reason}")
    looked = "; ".join(why) or (
        "no training_args.json, training_args.bin, axolotl / LLaMA-Factory YAML or rollout.toml [recipe] found"
    )
    ids = ", ".join(rule.id for rule in RECIPE_RULES)
    return [
        CFG_NOT_RUN.finding(
            logs[0].path,
            f"config rules {ids} (learning rate, warmup, precision, quantization, clipping) could not run for "
            f"this run: {looked}",
            evidence={"rules": ids.split(", "), "configs": [str(a.path) for a in configs]},
        )
    ]
