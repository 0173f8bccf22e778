"""Adapter rules (ADP###): ids, texts, tunables and flags, and the family's CheckSet. Light: registered at
start-up without numpy (the checks themselves live in probes/adapter/checks/, imported by the probe).

Flags: `tuner:<trait>` — the rule only means something for tuners whose saved tensors have that trait
(probes/common/peft/tuners.py: factors, ranked, scaled, dora, located); a rule without one applies to every
tuner. probes/adapter/applicability.py turns them into the `checks` fact and the ADP003 peft_type note.
"""

from __future__ import annotations

from doctor.core.checks import CheckSet
from doctor.core.rules import rule
from probes.common.peft.tuners import DORA as DORA_TRAIT
from probes.common.peft.tuners import FACTORS, LOCATED, RANKED, SCALED

NEEDS = "tuner:"


def needs(*traits: str) -> set[str]:
    """Flags of a rule that applies only to tuners with all these traits."""
    return {NEEDS + t for t in traits}


UNREADABLE = rule(
    "ADP001",
    "Adapter checkpoint unreadable or incomplete",
    "error",
    ["adapter_unreadable"],
    """
    The adapter folder is missing adapter_config.json or its weights, or adapter_model.safetensors is
    damaged: truncated, a header length that does not fit the file, tensors whose data offsets run
    past the end or overlap, an unknown dtype. PEFT and every server refuse such a checkpoint (or,
    worse, read garbage).
    """,
    """
    Re-save the adapter from the training run (`model.save_pretrained(dir)`), or copy it again and
    compare its sha256 with the registry's.
    """,
)
UNSAFE = rule(
    "ADP002",
    "Adapter weights stored as a pickle",
    "warning",
    ["unsafe_format"],
    """
    adapter_model.bin / .pt are Python pickles: loading one runs arbitrary code, so doctor never opens
    them and the weights were not checked. Servers increasingly refuse pickles too.
    """,
    """
    Convert in a trusted environment: `from peft import PeftModel; m = PeftModel.from_pretrained(base,
    dir); m.save_pretrained(out, safe_serialization=True)` (or `safetensors.torch.save_file(
    torch.load(path, weights_only=True), "adapter_model.safetensors")`), then delete the pickle.
    """,
)
BAD_CONFIG = rule(
    "ADP003",
    "adapter_config.json field invalid",
    "error",
    ["adapter_unreadable"],
    """
    A field of adapter_config.json is missing or has a value PEFT (or a server) does not accept:
    r, lora_alpha, target_modules, bias, rank_pattern/alpha_pattern values, layers_to_transform, or a
    peft_version older than the fields the config uses.
    """,
    "Fix the field (the message names it) or re-save the adapter with the PEFT version used to train it.",
)
INCONSISTENT = rule(
    "ADP004",
    "adapter_config.json does not match the saved weights",
    "error",
    ["adapter_unreadable", "scaling_mismatch"],
    """
    The config and the tensors disagree: lora_A/lora_B shapes whose rank is not r (or the rank_pattern
    entry), an A without its B, weights for modules target_modules does not select or outside
    layers_to_transform, modules_to_save without saved copies. PEFT fails with a size mismatch, or
    loads with the wrong alpha/r scale.
    """,
    """
    Use the adapter_config.json saved with these weights (same save_pretrained call); never edit r or
    rank_pattern by hand.
    """,
    flags=needs(RANKED),
)
TARGET_MISSING = rule(
    "ADP005",
    "Target module has no weights",
    "warning",
    ["target_module_missing"],
    """
    target_modules lists a module for which the checkpoint holds no LoRA weights: it matched nothing in
    the model that was trained (a typo, or a name from another architecture), so that part of the
    model was never adapted.
    """,
    "Use module names of the base architecture (e.g. q_proj, v_proj for Llama); check `print(model)`.",
    flags=needs(RANKED),
)
NON_FINITE = rule(
    "ADP006",
    "Adapter weights contain NaN or Inf",
    "error",
    ["adapter_non_finite"],
    """
    Some adapter tensors hold NaN or infinite values. Every forward pass through those modules
    produces NaN: the adapter is unusable. Usually the training run diverged before the save.
    """,
    """
    Retrain from the last finite checkpoint with a lower learning rate and gradient clipping
    (max_grad_norm 0.3–1.0); for fp16 training prefer bf16.
    """,
)
DEAD = rule(
    "ADP007",
    "Dead adapter: lora_B is zero",
    "error",
    ["dead_adapter"],
    """
    PEFT initialises lora_B to zero, so an update B·A stays exactly zero until gradients reach B.
    lora_B still ≈ 0 means the adapter was never trained, gradients never flowed (frozen by mistake,
    zero learning rate, the wrong adapter saved), or its weights were lost in a merge/save.
    Partially dead (some modules only): those modules got no gradient.
    """,
    """
    Check that trainable parameters are > 0 (`model.print_trainable_parameters()`), the learning rate
    is not 0 and the saved adapter is the trained one; retrain.
    """,
    rms=1e-7,
    flags=needs(FACTORS),
)
OUTLIER = rule(
    "ADP008",
    "Update size outlier across layers",
    "warning",
    [],
    """
    One module's update ‖scale·B·A‖_F is far larger than the same module in other layers (computed
    from the factors: ‖BA‖_F² = trace((BᵀB)(AAᵀ))). A single exploding layer is the fingerprint of a
    local instability or a bad merge.
    """,
    "Inspect that layer's training (grad norms); lower the learning rate or clip gradients.",
    factor=10.0,
    min_layers=4,
    flags=needs(FACTORS),
)
UNDERUSED = rule(
    "ADP009",
    "Adapter rank underused",
    "info",
    ["rank_underused"],
    """
    In most modules 90 % of the update's energy (Σσ² of B·A) lies in a few directions (energy rank),
    far fewer than r: a smaller r would give the same adapter with fewer parameters, less memory and
    a lower serving cost (servers size their LoRA slots by the max rank).
    """,
    "Retrain with r near the reported 90 %-energy rank (rounded up to a power of two).",
    share=0.25,
    min_r=16,
    energy=0.9,
    flags=needs(FACTORS),
)
SCALING = rule(
    "ADP010",
    "Unusual LoRA scaling",
    "warning",
    ["scaling_mismatch"],
    """
    The update is scaled by lora_alpha/r, or lora_alpha/√r with use_rslora. A scale far above the
    usual 0.5–2 amplifies every step (instability); far below, the adapter barely moves the model.
    With rsLoRA an alpha picked for classic LoRA (alpha = 2r) gives a scale of 2√r (16 at r = 64).
    Servers that ignore use_rslora or alpha_pattern apply a different scale than training did.
    """,
    "Pick lora_alpha so the scale is about 1–2 (classic: alpha = r…2r; rsLoRA: alpha ≈ √r…2√r).",
    max_scale=8.0,
    min_scale=0.05,
    flags=needs(SCALED),
)
DORA = rule(
    "ADP011",
    "DoRA magnitudes inconsistent",
    "error",
    ["scaling_mismatch"],
    """
    use_dora requires a lora_magnitude_vector per module; without it (or with magnitudes but
    use_dora false, or with magnitudes ≤ 0) the loaded model rescales weights differently from the
    trained one. LoRAX/TGI ignore magnitudes silently.
    """,
    "Re-save with the PEFT version used to train (DoRA needs PEFT >= 0.9) and keep use_dora as trained.",
    flags=needs(DORA_TRAIT),
)
BASE_SHAPES = rule(
    "ADP012",
    "Adapter shapes do not fit the base model",
    "error",
    ["base_mismatch"],
    """
    The adapter's tensor dimensions, layer indices or vocabulary do not match the base model's
    config.json: it was trained on another base. Some servers (vLLM) load smaller shapes silently and
    produce wrong outputs; PEFT fails with a size mismatch.
    """,
    "Serve the adapter with the base it was trained on, or retrain on this base.",
    flags=needs(LOCATED),
)
BASE_NAMES = rule(
    "ADP013",
    "Target modules the base architecture does not have",
    "error",
    ["target_module_missing", "base_mismatch"],
    """
    The adapter has weights for modules the base model does not have (names from another model
    family, layers it lacks), or its target_modules match nothing in the base, matched the way PEFT
    matches them (short names, full paths, a regex, all-linear, layers_to_transform, exclude_modules):
    PEFT raises "Target modules … not found in the base model" or leaves those weights unloaded.
    An entry of target_modules that matches no module while others do is a warning (PEFT ignores it).
    """,
    "Serve the adapter with the base it was trained on, or retrain with the base's module names.",
    flags=needs(LOCATED),
)
BASE_NAME = rule(
    "ADP014",
    "Base model name missing or different",
    "warning",
    ["base_mismatch"],
    """
    adapter_config.json's base_model_name_or_path is empty, or names another base than the rollout
    manifest (rollout.base_model_name / base_model). Servers never compare it, so the mistake only
    shows as bad outputs.
    """,
    "Check which base the adapter was trained on; set base_model_name_or_path to it.",
)

BASE_UNKNOWN = rule(
    "ADP015",
    "Base architecture not in doctor's table",
    "info",
    [],
    """
    The base model's config.json has a model_type (or a VLM text_config.model_type) that doctor's
    architecture table (probes/common/peft/arch.py) does not describe, or lacks the dimensions it needs.
    The checks that compare the adapter with the base's modules (ADP012 module shapes, ADP013 module
    names, targeted module share) were skipped; layer count and vocabulary were still compared.
    """,
    "Nothing to fix in the adapter; check it against the base with PEFT (`PeftModel.from_pretrained`).",
)

RULES = (
    UNREADABLE, UNSAFE, BAD_CONFIG, INCONSISTENT, TARGET_MISSING, NON_FINITE, DEAD, OUTLIER,
    UNDERUSED, SCALING, DORA, BASE_SHAPES, BASE_NAMES, BASE_NAME, BASE_UNKNOWN,
)  # fmt: skip

# Short names of the checks whose applicability depends on the tuner, in the order the `checks` fact and the
# ADP003 peft_type note list them (ADP005 follows ADP004 and is not listed on its own).
TUNER_CHECKS = {
    UNREADABLE.id: "file integrity",
    INCONSISTENT.id: "config vs weights (rank, targets)",
    NON_FINITE.id: "non-finite values",
    DEAD.id: "dead adapter",
    OUTLIER.id: "update-size outliers",
    UNDERUSED.id: "rank underuse",
    SCALING.id: "scaling",
    DORA.id: "DoRA magnitudes",
    BASE_SHAPES.id: "shapes vs base",
    BASE_NAMES.id: "module names vs base",
}

# One check per rule (probes/adapter/checks/), run by AdapterProbe on the prepared scan.
CHECKS = CheckSet("adapter", RULES)
