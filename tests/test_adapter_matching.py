"""match_targets against peft itself: for each family and config, the saved module paths and LoRA factor
shapes doctor predicts from config.json + adapter_config.json equal what peft's get_peft_model produces."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from probes.common.peft.arch import architecture_for
from probes.common.peft.matching import match_targets
from tests.adapter_families import FAMILIES, MOE_PARAMS, NAMES, VLMS


def _variants(family: str) -> list[tuple[str, dict[str, Any]]]:
    names, regex = NAMES[family]
    v: list[tuple[str, dict[str, Any]]] = [
        ("names", {"target_modules": names}),
        ("regex", {"target_modules": regex}),
        ("all-linear", {"target_modules": "all-linear"}),
        (
            "rank_pattern",
            {
                "target_modules": "all-linear",
                "rank_pattern": {names[0]: 4, r"layers\.1\..*": 2},
                "alpha_pattern": {names[0]: 3},
            },
        ),
        ("layers", {"target_modules": names, "layers_to_transform": [1]}),
        ("exclude", {"target_modules": "all-linear", "exclude_modules": [names[0]]}),
        ("full-paths", {"target_modules": None}),  # filled below from the all-linear result
    ]
    if family in MOE_PARAMS:
        v.append(("experts", {"target_modules": names, "target_parameters": MOE_PARAMS[family]}))
        v.append(("experts-rp", {"target_modules": ["q_proj"], "target_parameters": MOE_PARAMS[family],
                                 "rank_pattern": {"gate_up_proj": 4}}))  # fmt: skip
    return v


def _peft_saved(model: Any, lora: dict[str, Any]) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, **lora))
    sd = get_peft_model_state_dict(pm)
    cfg = pm.peft_config["default"].to_dict()
    cfg = json.loads(json.dumps(cfg, default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
    return {k: tuple(v.shape) for k, v in sd.items()}, cfg


def _predicted(cfg: dict[str, Any], arch: Any) -> dict[str, tuple[int, ...]]:
    m = match_targets(cfg, arch)
    out = {}
    for t in m.targets.values():
        base = f"base_model.model.{t.saved_path}"
        if t.spec.kind == "embedding":
            out[f"{base}.lora_embedding_A"] = t.lora_a_shape
            out[f"{base}.lora_embedding_B"] = t.lora_b_shape
        else:
            out[f"{base}.lora_A.weight"] = t.lora_a_shape
            out[f"{base}.lora_B.weight"] = t.lora_b_shape
    return out


@pytest.mark.parametrize("family", [*FAMILIES, *VLMS])
def test_matching_equals_peft(family: str) -> None:
    from tests.adapter_families import build_model

    proto = build_model(family, meta=True)
    arch = architecture_for(json.loads(proto.config.to_json_string()))
    assert arch is not None
    full_paths: list[str] = []
    for name, lora in _variants(family):
        if name == "full-paths":
            lora = {"target_modules": full_paths}
        model = build_model(family, meta=True)
        saved, cfg = _peft_saved(model, lora)
        saved = {k: v for k, v in saved.items() if not arch.is_unmodelled(k)}  # a VLM's vision tower
        if name == "all-linear":
            paths = [k[len("base_model.model.") : -len(".lora_A.weight")] for k in saved if k.endswith("A.weight")]
            full_paths = [
                p for p in paths if p in arch.modules and arch.modules[p].kind in ("linear", "conv1d")
            ]  # Linear modules, not the expert wrappers
        # Predicted from the config the user passed and from the config peft saved (both must hold).
        assert _predicted(cfg, arch) == saved, (family, name, "saved config")
        user = {"r": 8, "lora_alpha": 16, **lora}
        assert _predicted(user, arch) == saved, (family, name, "user config")
        m = match_targets(cfg, arch)
        for t in m.targets.values():  # rank / alpha per module as peft set them
            mod = model.get_submodule(t.saved_path)
            assert (mod.r["default"], float(mod.lora_alpha["default"])) == (t.r, t.alpha), (family, name, t.spec.path)


@pytest.mark.parametrize(
    ("target_modules", "raises"),
    [(["self_attn"], True), (r"model\.layers\.0", True), (["q_proj", "mlp"], True), (["q_proj", "nope"], False)],
)
def test_unsupported_targets_are_predicted_where_peft_raises(target_modules: Any, raises: bool) -> None:
    """A target that names a container (a decoder layer, self_attn, mlp) makes peft raise; doctor says so."""
    from peft import LoraConfig, get_peft_model

    from tests.adapter_families import build_model

    model = build_model("llama", meta=True)
    arch = architecture_for(json.loads(model.config.to_json_string()))
    assert arch is not None
    m = match_targets({"r": 8, "lora_alpha": 16, "target_modules": target_modules}, arch)
    assert bool(m.unsupported) == raises
    if raises:
        with pytest.raises(ValueError, match="is not supported"):
            get_peft_model(model, LoraConfig(r=8, target_modules=target_modules))
    else:
        assert m.unmatched_entries == ["nope"] and len(m.targets) == 2
