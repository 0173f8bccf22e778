"""The adapter checks over adapters exactly as peft writes them, for today's architecture families.

Per family: a tiny random base built from transformers' config class and saved with save_pretrained, then
adapters made by `get_peft_model(...).save_pretrained(...)` with explicit short names, all-linear, a regex
string, DoRA, rsLoRA, rank_pattern/alpha_pattern, modules_to_save, and the MoE expert parameters where the
family has them. Every valid adapter: no error, no warning, and the facts `doctor inspect` shows (rank,
alpha, scale, targeted module share) equal what peft built. Mutated cases (another family's base, a
resized width, another layer count, a tensor of the wrong shape, a module the base lacks) get an error
that names the tensor. `init_lora_weights=False` gives non-zero lora_B without a training step.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from doctor.core.settings import Settings
from doctor.engine import scan
from doctor.render.inspect_view import render_inspect
from probes.adapter import PROBES
from probes.common.peft.arch import architecture_for
from tests.adapter_families import MOE_PARAMS, NAMES, build_model

pytestmark = pytest.mark.slow

# ≥ 10 families: dense, MoE, fused-projection, Conv1D, query_key_value, OPT's decoder and a VLM text tower.
MATRIX = [
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "gemma3_text",
    "phi", "phi3", "gpt2", "gpt_neox", "falcon", "opt", "llava",
]  # fmt: skip


def _variants(family: str) -> dict[str, dict[str, Any]]:
    names, regex = NAMES[family]
    v: dict[str, dict[str, Any]] = {
        "names": {"target_modules": names},
        "all-linear": {"target_modules": "all-linear"},
        "regex": {"target_modules": regex},
        "dora": {"target_modules": names, "use_dora": True},
        "rslora": {"target_modules": "all-linear", "use_rslora": True, "lora_alpha": 8},
        "rank_pattern": {"target_modules": names, "rank_pattern": {names[0]: 4}, "alpha_pattern": {names[0]: 4}},
        "modules_to_save": {"target_modules": names, "modules_to_save": ["lm_head"]},
    }
    if family in MOE_PARAMS:
        v["experts"] = {"target_modules": ["q_proj"], "target_parameters": MOE_PARAMS[family]}
    return v


def _peft_facts(pm: Any) -> dict[str, Any]:
    """What peft built: adapted Linear/Conv1D count and the rank/alpha/scale of each adapted module."""
    from peft.tuners.lora import LoraLayer

    out: dict[str, Any] = {"modules": {}}
    for name, mod in pm.base_model.model.named_modules():
        if isinstance(mod, LoraLayer) and "default" in mod.r:
            out["modules"][name] = (mod.r["default"], float(mod.lora_alpha["default"]), mod.scaling["default"])
    return out


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    root = tmp_path_factory.mktemp("matrix")
    w: dict[str, Any] = {"root": root, "bases": {}, "adapters": {}, "peft": {}}
    for family in MATRIX:
        base_dir = root / f"base-{family}"
        build_model(family).save_pretrained(base_dir)
        auto = AutoModelForImageTextToText if family == "llava" else AutoModelForCausalLM
        base = auto.from_pretrained(base_dir)  # so peft records base_model_name_or_path like a user's run
        w["bases"][family] = base_dir
        for name, lora in _variants(family).items():
            model = copy.deepcopy(base)
            cfg = LoraConfig(**{"r": 8, "lora_alpha": 16, "init_lora_weights": False, **lora})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pm = get_peft_model(model, cfg)
            out = root / f"{family}-{name}"
            pm.save_pretrained(out)
            w["adapters"][(family, name)] = out
            w["peft"][(family, name)] = _peft_facts(pm)
    return w


def run(path: Path):
    # The adapters name their base by absolute path outside the scanned folder: allowed here (probes/common/paths.py
    # does not follow such paths by default).
    report = scan([path], Settings(sections={"paths": {"allow_outside": True}}), probes=PROBES)
    return report, [f for f in report.findings if f.severity.value in ("error", "warning")]


def _cases() -> list[tuple[str, str]]:
    return [(f, v) for f in MATRIX for v in _variants(f)]


def test_every_valid_adapter_is_clean_with_the_facts_peft_built(matrix) -> None:
    counted = 0
    for family, name in _cases():
        report, bad = run(matrix["adapters"][(family, name)])
        assert not bad, (family, name, [(f.rule, f.message) for f in bad])
        (art,) = [a for a in report.artifacts if a.kind == "adapter"]
        f, built = art.facts, matrix["peft"][(family, name)]["modules"]
        lora = _variants(family)[name]
        r, alpha = 8, float(lora.get("lora_alpha", 16))
        scale = alpha / math.sqrt(r) if lora.get("use_rslora") else alpha / r
        assert (f["r"], f["alpha"], f["scale"]) == (r, alpha, scale), (family, name)
        assert f["base"]["found_by"] == "adapter base_model_name_or_path", (family, name)
        # Targeted module share: peft's adapted Linear/Conv1D modules of the text tower over all of them.
        assert f["base"]["adapted_modules"] == len(_linear_targets(built, f)), (family, name)
        ranks = {row["path"]: row["r"] for row in f["layers"]}
        for path, (pr, _pa, _ps) in built.items():
            saved = next((p for p in ranks if p == path or p.endswith("." + path)), None)
            if saved is not None:
                assert ranks[saved] == pr, (family, name, path)
        # max_rank: what vLLM compares with --max-lora-rank (the config r, or a larger weight or pattern rank)
        assert f["max_rank"] == max(8, *(pr for pr, _, _ in built.values())), (family, name)
        counted += 1
    assert counted >= 100


def _linear_targets(built: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """peft's adapted modules that are Linear/Conv1D of the text tower (not expert/router wrappers)."""
    layers = {row["path"]: row for row in facts["layers"]}
    out = []
    for path in built:
        if "vision_tower" in path or "multi_modal_projector" in path or path not in layers:
            continue
        if path.endswith(("experts", "base_layer", "mlp.gate")) or "embed" in path:
            continue
        out.append(path)
    return out


def test_inspect_shows_rank_alpha_scale_and_share(matrix) -> None:
    for family, name in [("llama", "all-linear"), ("gpt2", "rslora"), ("mixtral", "experts"), ("phi3", "names")]:
        report, _ = run(matrix["adapters"][(family, name)])
        text = render_inspect(report, "text")
        f = report.artifacts[0].facts
        assert f"  r: {f['r']}\n" in text and f"  alpha: {f['alpha']:.6g}\n" in text, text
        assert f"  scale: {f['scale']:.6g}\n" in text and f"    module_share: {f['base']['module_share']:.6g}\n" in text
        assert f"  summary: {f['summary']}\n" in text
    # all-linear adapts every Linear but the head: share 1; two short names on llama: 2 of 7 per layer
    all_lin = run(matrix["adapters"][("llama", "all-linear")])[0].artifacts[0].facts["base"]
    names = run(matrix["adapters"][("llama", "names")])[0].artifacts[0].facts["base"]
    assert all_lin["module_share"] == 1.0 and all_lin["adapted_modules"] == all_lin["linear_modules"] == 14
    assert names["adapted_modules"] == 6 and names["module_share"] == round(6 / 14, 4)
    f = run(matrix["adapters"][("gpt2", "rslora")])[0].artifacts[0].facts
    assert f["summary"] == (
        "LORA r=8, alpha=8, scale=2.828 (alpha/√r, rsLoRA); adapts 8 of 8 linear modules (100%) of the gpt2 base"
    )


def test_moe_experts_have_per_expert_rank(matrix) -> None:
    report, bad = run(matrix["adapters"][("mixtral", "experts")])
    assert not bad
    rows = [r for r in report.artifacts[0].facts["layers"] if r["module"] in ("gate_up_proj", "down_proj")]
    assert len(rows) == 4 and all(r["r"] == 8 and 1 <= r["effective_rank"] <= 8 for r in rows), rows


# ---- mutated cases: each is an error naming the tensor -------------------------------------------------


def _copy(matrix, family: str, name: str, tag: str) -> Path:
    dst = matrix["root"] / f"mut-{tag}-{family}-{name}"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(matrix["adapters"][(family, name)], dst)
    return dst


def _point_at_base(adapter: Path, base_cfg: dict[str, Any], matrix, tag: str) -> None:
    base = matrix["root"] / f"base-{tag}"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text(json.dumps(base_cfg))
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))


def _errors(path: Path) -> list[Any]:
    report, _ = run(path)
    return [f for f in report.findings if f.severity.value == "error"]


def _names_a_tensor(findings: list[Any], keys: list[str]) -> bool:
    return any(any(k in f.message or f.locator == k for k in keys) for f in findings)


def _keys(adapter: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "np") as fh:
        return list(fh.keys())


def _base_cfg(matrix, family: str) -> dict[str, Any]:
    return json.loads((matrix["bases"][family] / "config.json").read_text())


def _differs(matrix, family: str, other: str, variant: str) -> bool:
    a, b = architecture_for(_base_cfg(matrix, family)), architecture_for(_base_cfg(matrix, other))
    assert a is not None and b is not None
    if variant == "names":
        return not set(NAMES[family][0]) <= b.module_names()
    return a.family != b.family


MUTATIONS = ("wrong-family", "width", "layers", "tensor-shape", "alien-module")


def test_mutations_are_errors_naming_the_tensor(matrix) -> None:
    from safetensors.numpy import load_file, save_file

    counts = dict.fromkeys(MUTATIONS, 0)
    for i, family in enumerate(MATRIX):
        for name in ("names", "all-linear"):
            # another family's base: the next one in the list that lays its modules out differently (for the
            # short-names adapter: one that lacks a targeted name; Mixtral's q_proj/v_proj on a Qwen2 base of
            # the same widths and vocabulary is structurally fine, and doctor rightly says nothing)
            other = next(f for f in MATRIX[i + 1 :] + MATRIX[:i] if _differs(matrix, family, f, name))
            ad = _copy(matrix, family, name, "fam")
            _point_at_base(ad, _base_cfg(matrix, other), matrix, f"{other}-as-{family}")
            errs = _errors(ad)
            assert errs and _names_a_tensor(errs, _keys(ad)), (family, name, other, [e.message for e in errs])
            counts["wrong-family"] += 1
            # resized width
            cfg = _base_cfg(matrix, family)
            tc = cfg.get("text_config", cfg)
            for k in ("hidden_size", "n_embd"):
                if k in tc:
                    tc[k] = tc[k] * 2
            ad = _copy(matrix, family, name, "width")
            _point_at_base(ad, cfg, matrix, f"{family}-wide")
            errs = _errors(ad)
            assert any(e.rule == "ADP012" for e in errs) and _names_a_tensor(errs, _keys(ad)), (family, name)
            counts["width"] += 1
            # one layer fewer
            cfg = _base_cfg(matrix, family)
            tc = cfg.get("text_config", cfg)
            for k in ("num_hidden_layers", "n_layer"):
                if k in tc:
                    tc[k] = 1
            ad = _copy(matrix, family, name, "layers")
            _point_at_base(ad, cfg, matrix, f"{family}-short")
            errs = _errors(ad)
            assert any(e.rule == "ADP012" and "layers [1]" in e.message for e in errs), (family, name, errs)
            assert _names_a_tensor(errs, _keys(ad)), (family, name)
            counts["layers"] += 1
        # one lora_A with the wrong input width; one module renamed to a name no family has
        ad = _copy(matrix, family, "names", "shape")
        sd = load_file(str(ad / "adapter_model.safetensors"))
        victim = sorted(k for k in sd if k.endswith("lora_A.weight"))[0]
        sd[victim] = np.zeros((sd[victim].shape[0], sd[victim].shape[1] + 4), dtype=sd[victim].dtype)
        save_file(sd, str(ad / "adapter_model.safetensors"), metadata={"format": "pt"})
        errs = _errors(ad)
        assert any(e.rule == "ADP012" and victim in e.message for e in errs), (family, victim, errs)
        counts["tensor-shape"] += 1
        ad = _copy(matrix, family, "names", "alien")
        sd = load_file(str(ad / "adapter_model.safetensors"))
        victim = sorted(k for k in sd if k.endswith("lora_A.weight"))[0]
        mod = victim[: -len(".lora_A.weight")]
        alien = mod.rsplit(".", 1)[0] + ".wq_alien"
        sd = {k.replace(mod + ".", alien + "."): v for k, v in sd.items()}
        save_file(sd, str(ad / "adapter_model.safetensors"), metadata={"format": "pt"})
        errs = _errors(ad)
        assert any(e.rule == "ADP013" and alien in e.message for e in errs), (family, alien, errs)
        counts["alien-module"] += 1
    print("mutation counts:", counts)
    assert all(v >= len(MATRIX) for v in counts.values()), counts


def test_issue_cases(matrix) -> None:
    """The three reports of issue #20."""
    # all-linear on Llama/Qwen2/Qwen3/Mistral/Gemma2: peft stores full paths; no ADP013
    for family in ("llama", "qwen2", "qwen3", "mistral", "gemma2"):
        cfg = json.loads((matrix["adapters"][(family, "all-linear")] / "adapter_config.json").read_text())
        assert any("." in t for t in cfg["target_modules"])  # the full-path form peft writes
        _, bad = run(matrix["adapters"][(family, "all-linear")])
        assert not bad, (family, [(f.rule, f.message) for f in bad])
    # Mixtral all-linear: peft wraps the expert parameters; no ADP004, rank 8 not 64
    report, bad = run(matrix["adapters"][("mixtral", "all-linear")])
    assert not bad, [(f.rule, f.message) for f in bad]
    assert report.artifacts[0].facts["max_rank"] == 16  # gate_up_proj fuses w1+w3: peft doubles r there
    # A Qwen2 adapter beside a GPT-2 base
    ad = _copy(matrix, "qwen2", "all-linear", "q2-gpt2")
    _point_at_base(ad, _base_cfg(matrix, "gpt2"), matrix, "gpt2-for-qwen2")
    errs = _errors(ad)
    assert {"ADP013"} <= {e.rule for e in errs}, errs
