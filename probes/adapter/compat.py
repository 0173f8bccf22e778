"""Adapter vs base model: every saved tensor resolved to the base module (or parameter) PEFT puts it on.

`resolve(modules, config, arch)` pairs each saved module with a `Target` of `match_targets` (what PEFT adapts)
or, when the config does not select it, with the base module at that path (`Architecture.locate`);
`shape_problems` / `full_copy_problems` say which saved tensors do not fit their base module (the ADP012/013
checks in probes/adapter/checks/base.py turn them into findings that name the tensor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from probes.common.peft.arch import CONV1D, EMBEDDING, LINEAR, Architecture, Spec, legacy_expert
from probes.common.peft.config import SavedModule, layer_of
from probes.common.peft.matching import Matching, Target, match_targets
from probes.common.peft.tuners import expected_shapes


@dataclass
class Resolved:
    """Saved modules by how they relate to the base."""

    arch: Architecture
    matching: Matching
    targets: dict[str, Target] = field(default_factory=dict)  # saved path → Target (config selects it)
    unselected: dict[str, Spec] = field(default_factory=dict)  # saved path → base module the config skips
    missing: list[str] = field(default_factory=list)  # saved paths the base lacks
    unmodelled: list[str] = field(default_factory=list)  # a VLM's vision tower: not checked
    beyond: list[str] = field(default_factory=list)  # in layers the base does not have


def _norm(path: str) -> str:
    return path[len("base_model.model.") :] if path.startswith("base_model.model.") else path


def resolve(modules: dict[str, SavedModule], config: Any, arch: Architecture) -> Resolved:
    m = match_targets(config, arch)
    res = Resolved(arch, m)
    # Saved paths may carry another prefix than the causal LM (AutoModel, a classification head): map by spec.
    by_spec = {id(t.spec): t for t in m.targets.values()}
    for path in modules:
        t = m.by_saved_path.get(path)
        if t is None:
            spec = arch.locate(path)
            t = by_spec.get(id(spec)) if spec is not None else None
            if t is None and spec is None and path.endswith(".base_layer"):
                t = _param_chain(path, m, arch)
            if t is None and spec is None and (legacy := legacy_expert(arch, path)) is not None:
                t = _legacy_target(legacy, m, config)
                if t is None:
                    spec = legacy[0]
            if t is None:
                if spec is not None:
                    res.unselected[path] = spec
                elif arch.is_unmodelled(path):
                    res.unmodelled.append(path)
                elif (layer := layer_of(path)) is not None and arch.num_layers and layer >= arch.num_layers:
                    res.beyond.append(path)  # the layer-count finding says it
                else:
                    res.missing.append(path)
                continue
        res.targets[path] = t
    return res


def _legacy_target(legacy: tuple[Spec, str], m: Matching, config: Any) -> Target | None:
    """A v4 per-expert module whose v5 parameter the (converted) config targets: peft loads it there. Its own
    rank is the config's r: peft's doubling for a fused gate_up_proj applies to the stacked v5 factors."""
    spec, v5 = legacy
    t5 = m.targets.get(v5)
    if t5 is None:
        return None
    raw = config.raw if hasattr(config, "raw") else config
    r = raw.get("r") if isinstance(raw.get("r"), int) else t5.r
    alpha = raw.get("lora_alpha") if isinstance(raw.get("lora_alpha"), (int, float)) else t5.alpha
    rs = bool(raw.get("use_rslora"))
    return Target(spec, spec.path, r, float(alpha), alpha / (r**0.5) if rs else alpha / r)


def _param_chain(path: str, m: Matching, arch: Architecture) -> Target | None:
    """A ParamWrapper chain under another prefix: match by (layer, path inside the layer)."""
    owner = path
    depth = 0
    while owner.endswith(".base_layer"):
        owner, depth = owner[: -len(".base_layer")], depth + 1
    spec = arch.locate(owner)
    if spec is None:
        return None
    want = spec.path + ".base_layer" * depth
    return m.by_saved_path.get(want)


def _shape(sc: Any, key: str | None) -> tuple[int, ...] | None:
    if key is None:
        return None
    t = sc.tensors.get(key)
    return tuple(t.shape) if t is not None else None


def shape_problems(sc: Any, res: Resolved) -> list[tuple[str, str]]:
    """(tensor key, what does not fit) for every LoRA factor whose in/out side differs from its base module.
    The rank side is ADP004's business (config vs weights), so only the base-facing dimension is compared."""
    out: list[tuple[str, str]] = []
    pairs: list[tuple[str, Spec, int]] = [(p, t.spec, t.spec.experts) for p, t in res.targets.items()]
    pairs += [(p, s, s.experts) for p, s in res.unselected.items()]
    for path, spec, _experts in pairs:
        roles = sc.modules[path].tensors
        if spec.kind == EMBEDDING:
            a, b = _shape(sc, roles.get("emb_A")), _shape(sc, roles.get("emb_B"))
            if a and len(a) == 2 and a[1] != spec.in_features:
                out.append((roles["emb_A"], f"covers {a[1]} tokens, base {spec.path} has {spec.in_features}"))
            if b and len(b) == 2 and b[0] != spec.out_features:
                out.append((roles["emb_B"], f"has {b[0]} rows, base {spec.path} is {spec.out_features} wide"))
            a, b = _shape(sc, roles.get("A")), _shape(sc, roles.get("B"))
        else:
            a, b = _shape(sc, roles.get("A")), _shape(sc, roles.get("B"))
        if a and b and len(a) == 2 and len(b) == 2:
            got = (a[1], b[0])
            exp = (spec.in_features, spec.out_features)
            if spec.kind == EMBEDDING:
                continue
            if got != exp:
                out.append((roles["A"], f"{path} is {got[0]}→{got[1]}, base has {exp[0]}→{exp[1]}"))
        if spec.kind in (LINEAR, CONV1D):
            shapes = {role: tuple(sc.tensors[k].shape) for role, k in roles.items()}
            for role, msg in expected_shapes(shapes, spec.in_features, spec.out_features):
                out.append((roles[role], f"{path}: {msg}"))
        mag = _shape(sc, roles.get("magnitude"))
        if mag and spec.kind != EMBEDDING and mag[-1] != spec.out_features and mag[0] != spec.out_features:
            out.append((roles["magnitude"], f"DoRA magnitude has {mag[0]} entries, base {spec.path} has "
                                            f"{spec.out_features} outputs"))  # fmt: skip
    return out


_COPY_SUFFIX = re.compile(r"(?:\.base_layer|\.modules_to_save(?:\.[^.]+)?|\.original_module)*\.(weight|bias)$")


def full_copy_problems(sc: Any, arch: Architecture) -> list[tuple[str, str]]:
    """(key, what does not fit) for saved whole tensors (modules_to_save copies, embedding layers PEFT saves
    beside an embedding LoRA) whose shape differs from the base module's weight. Keys of modules the base
    does not have (a classification head's `score`) are not judged here."""
    out = []
    for key in sc.other:
        m = _COPY_SUFFIX.search(key)
        if m is None:
            continue
        spec = arch.locate(_norm(key[: m.start()]))
        if spec is None or spec.kind not in (LINEAR, CONV1D, EMBEDDING):
            continue
        got = tuple(sc.tensors[key].shape)
        want = spec.shape if m.group(1) == "weight" else (spec.out_features,)
        if got != want:
            what = "rows" if spec.kind == EMBEDDING else "shape"
            if spec.kind == EMBEDDING and len(got) == 2 and got[1:] == want[1:]:
                out.append((key, f"has {got[0]} {what} but the base's {spec.path} has {want[0]} (vocab_size): "
                                 f"PEFT fails with a size mismatch unless the base's embeddings are resized to "
                                 f"{got[0]} first"))  # fmt: skip
            else:
                out.append((key, f"is {list(got)} but the base's {spec.path} is {list(want)}"))
    return out
