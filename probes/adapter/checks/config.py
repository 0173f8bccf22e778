"""adapter_config.json against the saved weights: ranks, pairs, selected modules and layers, saved copies
(ADP004); target_modules entries without weights (ADP005)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from doctor.core.model import Finding
from doctor.core.probe import ProbeContext
from probes.adapter.rules import CHECKS, INCONSISTENT, TARGET_MISSING
from probes.adapter.text import listed, short_tm
from probes.common.peft.config import targets_module

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


@CHECKS(INCONSISTENT, scope="artifact")
def consistency(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    cfg = sc.config
    if cfg is None or not sc.tensors:
        return []
    out: list[Finding] = []
    path = sc.weights
    rank_bad: list[str] = []
    for m in sc.modules.values():
        roles = m.tensors
        if ("A" in roles) != ("B" in roles):
            have, miss = ("lora_A", "lora_B") if "A" in roles else ("lora_B", "lora_A")
            out.append(INCONSISTENT.finding(path, f"{m.path} has {have} but no {miss}", locator=m.path))
        if ("emb_A" in roles) != ("emb_B" in roles):
            out.append(INCONSISTENT.finding(path, f"{m.path} has only one of lora_embedding_A/B", locator=m.path))
        a = roles.get("A") or roles.get("emb_A")
        want, experts, what = _expected_rank(sc, m.path)
        if a and want and sc.tensors[a].shape and sc.tensors[a].shape[0] != want * experts:
            per = f" per expert x {experts} experts" if experts > 1 else ""
            rank_bad.append(f"{m.path}: {what} = {want}{per} but {a.rsplit('.', 2)[-2]} is {list(sc.tensors[a].shape)}")
    if rank_bad:
        out.append(
            INCONSISTENT.finding(
                path,
                f"{len(rank_bad)} of {len(sc.modules)} modules have a rank other than the config's: "
                f"{listed(rank_bad, 3)}",
                locator=rank_bad[0].split(":")[0],
                evidence={"modules": len(rank_bad), "examples": rank_bad[:10], "config_r": cfg.r},
            )
        )
    for mod, msg in sc.shape_issues:
        out.append(INCONSISTENT.finding(path, f"{mod}: {msg}", locator=mod))
    tm = cfg.target_modules
    if sc.resolved is not None:  # the base is known: exactly what PEFT would (not) adapt
        untargeted = sorted(sc.resolved.unselected)
    else:
        untargeted = [
            m.path
            for m in sc.modules.values()
            if targets_module(tm, m.path) is False and not _maybe_parameter_wrapper(cfg, m.path)
        ]
    if untargeted:
        out.append(
            INCONSISTENT.finding(
                path,
                f"{len(untargeted)} modules have weights but target_modules {short_tm(tm)} does not select them "
                f"(PEFT leaves them unloaded): {listed(untargeted)}",
                locator=untargeted[0],
            )
        )
    ltt = cfg.layers_to_transform
    if ltt is not None:
        outside = sorted({m.layer for m in sc.modules.values() if m.layer is not None and m.layer not in ltt})
        if outside:
            out.append(
                INCONSISTENT.finding(
                    path,
                    f"weights in layers {outside} outside layers_to_transform {ltt}",
                    locator="/layers_to_transform",
                )
            )
    for name in cfg.modules_to_save:
        if not any(f".{name}." in f".{k}" for k in sc.other):
            out.append(
                INCONSISTENT.finding(
                    path,
                    f"modules_to_save has {name!r} but no full copy of it was saved ({len(sc.other)} non-LoRA tensors)",
                    locator=f"/modules_to_save/{cfg.modules_to_save.index(name)}",
                )
            )
    return out


@CHECKS(TARGET_MISSING, scope="artifact")
def target_missing(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    """A target_modules name no saved tensor belongs to (neither a LoRA module nor a saved copy)."""
    cfg = sc.config
    if cfg is None or not sc.tensors or not isinstance(cfg.target_modules, list):
        return []
    tm = cfg.target_modules
    out: list[Finding] = []
    for t in tm:
        if not any(m.path == t or m.path.endswith("." + t) for m in sc.modules.values()) and not any(
            f".{t}." in f".{k}" for k in sc.other
        ):
            out.append(
                TARGET_MISSING.finding(
                    sc.config_path,
                    f"target_modules has {t!r} but no saved tensor belongs to a {t!r} module "
                    f"({len(sc.modules)} adapted modules: "
                    f"{listed(sorted({m.target for m in sc.modules.values()}))})",
                    locator=f"/target_modules/{tm.index(t)}",
                )
            )
    return out


def _expected_rank(sc: Scan, path: str) -> tuple[int | None, int, str]:
    """(rank per expert, experts, which config field says so) for one saved module."""
    cfg = sc.config
    assert cfg is not None
    t = sc.resolved.targets.get(path) if sc.resolved is not None else None
    if t is not None:
        what = "rank_pattern" if t.r != cfg.r else cfg.tuner.rank_field or "r"
        if path in cfg.rank_masks:
            what = "the AdaLoRA rank mask (rank_pattern)"
        return t.r, t.spec.experts, what
    if _maybe_parameter_wrapper(cfg, path):
        return None, 1, ""  # a target_parameters wrapper on an unknown base: its expert count is unknown
    want = cfg.rank_for(path)
    return want, 1, "rank_pattern" if want != cfg.r else "r"


def _maybe_parameter_wrapper(cfg: Any, path: str) -> bool:
    """Without the base: could this saved module be PEFT's ParamWrapper for a target_parameters entry?"""
    params = cfg.get("target_parameters") or []
    if not params or targets_module(cfg.target_modules, path) is True:
        return False
    bare = path
    while bare.endswith(".base_layer"):
        bare = bare[: -len(".base_layer")]
    names = [p for p in params if isinstance(p, str)]
    if bare != path or any("." not in p for p in names):  # a bare parameter name may sit on any module
        return True
    return any(bare == o or bare.endswith("." + o) for o in (p.rsplit(".", 1)[0] for p in names))
