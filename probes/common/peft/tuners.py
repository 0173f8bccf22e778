"""PEFT tuner types: the config fields each one uses, the tensors it saves, and what those tensors are (traits).

Saved tensor names (peft 0.21, adapter name stripped), per adapted module at `<path>`:

    LORA     <path>.lora_A.weight [r, in], .lora_B.weight [out, r] (+ .lora_B.bias with lora_bias),
             .lora_magnitude_vector [out] (DoRA), embeddings .lora_embedding_A [r, vocab] / _B [dim, r];
             scale alpha/r (alpha/√r with use_rslora)
    ADALORA  <path>.lora_A [r_i, in], .lora_B [out, r_i], .lora_E [r_i, 1]; r_i = init_r, or the number
             of True entries of the saved rank mask rank_pattern["<path>.lora_E"] (peft cuts the saved
             factors to it); ΔW = B·diag(E)·A·alpha/init_r
    IA3      <path>.ia3_l [out, 1], or [1, in] for feedforward_modules (a learned rescaling, no rank)
    LOHA     <path>.hada_w1_a / hada_w2_a [out, r], .hada_w1_b / hada_w2_b [r, in]; scale alpha/r
    LOKR     <path>.lokr_w1 [a, b] (or lokr_w1_a [a, r] · lokr_w1_b [r, b]) and lokr_w2 [c, d] (or _a/_b):
             ΔW = w1 ⊗ w2, so out = a·c and in = b·d; scale alpha/r
"""

from __future__ import annotations

from dataclasses import dataclass

# What a tuner's saved tensors are, in words a checker can branch on: a probe family's rules name the traits
# they need (through their flags), so which checks apply to which tuner follows from these two sets.
FACTORS = "factors"  # low-rank factors A, B whose product is the update: norms, ranks and B = 0 mean something
RANKED = "ranked"  # a config rank the saved tensors must match
SCALED = "scaled"  # a fixed alpha/r scale (AdaLoRA's budget moves its ranks during training)
DORA = "dora"  # may carry DoRA magnitude vectors
LOCATED = "located"  # each tensor's shape follows from the base module it sits on (see expected_shapes)
TRAITS = (FACTORS, RANKED, SCALED, DORA, LOCATED)


@dataclass(frozen=True)
class Tuner:
    label: str
    rank_field: str | None  # the config field holding r
    alpha_field: str | None
    traits: frozenset[str] = frozenset()

    def has(self, trait: str) -> bool:
        return trait in self.traits


TUNERS: dict[str, Tuner] = {
    "LORA": Tuner("LoRA", "r", "lora_alpha", frozenset(TRAITS)),
    "ADALORA": Tuner("AdaLoRA", "init_r", "lora_alpha", frozenset({FACTORS, RANKED, LOCATED})),
    "IA3": Tuner("IA3", None, None, frozenset({LOCATED})),
    "LOHA": Tuner("LoHa", "r", "alpha", frozenset({RANKED, SCALED, LOCATED})),
    "LOKR": Tuner("LoKr", "r", "alpha", frozenset({RANKED, SCALED, LOCATED})),
}
# Any other type (VeRA, OFT, BOFT, FourierFT, …): its tensors are not interpreted.
OTHER = Tuner("other", None, None)


def tuner_for(peft_type: object) -> Tuner:
    return TUNERS.get(str(peft_type).upper(), OTHER) if peft_type is not None else TUNERS["LORA"]


def expected_shapes(roles: dict[str, tuple[int, ...]], in_f: int, out_f: int) -> list[tuple[str, str]]:
    """(role, what does not fit) for the non-LoRA tensors of one module against its base in/out features."""
    out: list[tuple[str, str]] = []

    def bad(role: str, msg: str) -> None:
        out.append((role, msg))

    ia3 = roles.get("ia3")
    if ia3 is not None and ia3 not in ((out_f, 1), (1, in_f)):
        bad("ia3", f"ia3_l is {list(ia3)}; the base module needs [{out_f}, 1] (or [1, {in_f}] for a feedforward one)")
    for a, b in (("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")):
        sa, sb = roles.get(a), roles.get(b)
        if sa is not None and len(sa) == 2 and sa[0] != out_f:
            bad(a, f"{a} has {sa[0]} rows; the base module has {out_f} outputs")
        if sb is not None and len(sb) == 2 and sb[1] != in_f:
            bad(b, f"{b} has {sb[1]} columns; the base module has {in_f} inputs")
    w1, w2 = _kron_factor(roles, "lokr_w1"), _kron_factor(roles, "lokr_w2")
    if w1 is not None and w2 is not None and (w1[0] * w2[0], w1[1] * w2[1]) != (out_f, in_f):
        role = "lokr_w1" if "lokr_w1" in roles else "lokr_w1_a"
        bad(role, f"lokr_w1 ⊗ lokr_w2 is {w1[0] * w2[0]}x{w1[1] * w2[1]}; the base module is {out_f}x{in_f}")
    return out


def _kron_factor(roles: dict[str, tuple[int, ...]], name: str) -> tuple[int, int] | None:
    full = roles.get(name)
    if full is not None and len(full) == 2:
        return full[0], full[1]
    a, b = roles.get(name + "_a"), roles.get(name + "_b")
    if a is not None and b is not None and len(a) == 2 and len(b) == 2:
        return a[0], b[1]
    return None
