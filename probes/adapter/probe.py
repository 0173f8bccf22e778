"""Adapter rules (ADP###) and the probe that runs them over one scan of the checkpoint."""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding, Severity
from doctor.core.probe import Probe, ProbeContext
from doctor.core.safeio import require_readable
from probes.adapter.compat import base_findings, resolve
from probes.adapter.rules import (
    BAD_CONFIG,
    BASE_NAME,
    BASE_SHAPES,
    DEAD,
    DORA,
    INCONSISTENT,
    NON_FINITE,
    OUTLIER,
    RULES,
    SCALING,
    TARGET_MISSING,
    UNDERUSED,
    UNREADABLE,
    UNSAFE,
)
from probes.adapter.scan import WEIGHT_NAMES, Scan, scan_adapter
from probes.adapter.stats import energy_rank
from probes.common.paths import policy_for
from probes.common.peft.arch import architecture_for
from probes.common.peft.basemodel import base_dims, find_base_config, read_base_config, read_config_json
from probes.common.peft.config import targets_module
from probes.common.peft.tuners import applies, tuner_for


def _sha_wanted(ctx: ProbeContext) -> bool | None:
    """sha256 of the weights: computed when a registry in the rollout may pin it, else only for small
    files ([adapter] sha256 = "always" | "never" | "auto" in settings)."""
    mode = str(ctx.section("adapter").get("sha256", "auto"))
    if mode == "always":
        return True
    if mode == "never":
        return False
    serving = (ctx.rollout.manifest or {}).get("serving", {})
    if ctx.rollout.of_kind("registry") or (isinstance(serving, dict) and serving.get("registry")):
        return True
    return None


def _list(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


class AdapterProbe(Probe):
    name = "adapter"
    kinds = frozenset({"adapter"})
    rules = RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        cancelled = ctx.cancelled.is_set if ctx.cancelled is not None else None
        for name in WEIGHT_NAMES:  # there but unreadable (permissions, a folder, a FIFO): DOC001, not a crash
            if os.path.lexists(artifact.path / name):
                require_readable(artifact.path / name)
        sc = scan_adapter(
            artifact.path, want_sha256=_sha_wanted(ctx), cancelled=cancelled, plan=lambda s: plan_base(s, ctx)
        )
        artifact.facts.update(sc.facts)
        out: list[Finding] = []
        out += unsafe(sc)
        for p in sc.problems:
            out.append(
                UNREADABLE.finding(
                    p.file, f"{p.file.name}: {p.reason}" + (f" at {p.where}" if p.where else ""), locator=p.where
                )
            )
        out += config_fields(sc)
        peft_type = sc.config.raw.get("peft_type") if sc.config is not None else None

        def on(rule_id: str) -> bool:  # IA3, LoHa, LoKr, …: only the checks that mean something for them
            return applies(peft_type, rule_id)

        out += consistency(sc) if on("ADP004") else []
        out += non_finite(sc)
        out += dead(sc, ctx) if on("ADP007") else []
        out += outliers(sc, ctx) if on("ADP008") else []
        out += _once_per_run(underused(sc, ctx), artifact.path, ctx) if on("ADP009") else []
        out += scaling(sc, ctx) if on("ADP010") else []
        out += dora(sc) if on("ADP011") else []
        out += [f for f in base_checks(sc, ctx, artifact) if f.rule not in ("ADP012", "ADP013") or on(f.rule)]
        tuner = tuner_for(peft_type)
        artifact.facts["checks"] = {"applied": list(tuner.checks), "not_applicable": tuner.skipped()}
        artifact.facts["summary"] = summary(artifact.facts)
        return out


def summary(f: dict[str, Any]) -> str:
    """One line for `doctor inspect`: type, rank, alpha, scale, and how much of the base it adapts."""
    kind = str(f.get("peft_type") or "?")
    if f.get("use_dora"):
        kind += "+DoRA"
    parts = [f"{kind} r={f.get('r')}"]
    if f.get("alpha") is not None:
        parts.append(f"alpha={f['alpha']:g}")
    if f.get("scale") is not None:
        parts.append(f"scale={f['scale']:.4g} ({'alpha/√r, rsLoRA' if f.get('use_rslora') else 'alpha/r'})")
    if f.get("rank_pattern") or f.get("alpha_pattern"):
        parts.append(f"ranks {f.get('weight_ranks')}")
    line = ", ".join(parts)
    base = f.get("base") or {}
    if base.get("module_share") is not None:
        line += (
            f"; adapts {base['adapted_modules']} of {base['linear_modules']} linear modules "
            f"({base['module_share']:.0%}) of the {base.get('family')} base"
        )
        if base.get("adapted_parameters"):
            line += f" and {base['adapted_parameters']} expert/router parameters"
    elif base:
        line += "; base structure unknown (module share not computed)"
    if f.get("modules_to_save"):
        line += f"; saves {', '.join(f['modules_to_save'])} whole"
    return line


def plan_base(sc: Scan, ctx: ProbeContext) -> None:
    """Before the tensors are read: find the base's config.json, resolve every saved module to the base module
    or parameter it sits on (sc.resolved) and note the MoE parameter wrappers (sc.experts)."""
    name = sc.config.raw.get("base_model_name_or_path") if sc.config else None
    cfg_path, how = find_base_config(sc.folder, ctx.rollout, name if isinstance(name, str) else None)
    if cfg_path is None:
        return
    policy = policy_for(ctx)
    if how == "adapter base_model_name_or_path" and not policy.allows(cfg_path):  # probes/common/paths.py: not read
        refused = policy.finding(sc.config_path, cfg_path.parent, "base_model_name_or_path")
        ctx.shared.setdefault("doc010", {})[sc.folder] = refused
        return
    raw = read_config_json(cfg_path)
    if raw is None:
        return
    sc.base = (cfg_path, how, raw)
    arch = architecture_for(raw)
    if arch is None or sc.config is None:
        return
    sc.resolved = resolve(sc.modules, sc.config, arch)
    sc.experts = {p: t.spec.experts for p, t in sc.resolved.targets.items() if t.spec.experts > 1}


def unsafe(sc: Scan) -> list[Finding]:
    if not sc.pickles:
        return []
    names = ", ".join(p.name for p in sc.pickles)
    if sc.weights is not None:
        return [
            UNSAFE.finding(
                sc.pickles[0],
                f"{names} (pickle, not loaded) sits beside {sc.weights.name}; loaders that prefer the pickle "
                "may read different weights",
                severity=Severity.INFO,
            )
        ]
    size = sum(p.stat().st_size for p in sc.pickles)
    return [
        UNSAFE.finding(
            sc.pickles[0], f"{names} is a pickle ({size} bytes); it was not loaded, so its weights were not checked"
        )
    ]


def config_fields(sc: Scan) -> list[Finding]:
    if sc.config is None:
        return []
    out = [
        BAD_CONFIG.finding(sc.config_path, i.message, locator=f"/{i.field}", severity=Severity.parse(i.severity))
        for i in sc.config.issues
    ]
    return out


def consistency(sc: Scan) -> list[Finding]:
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
                f"{_list(rank_bad, 3)}",
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
                f"{len(untargeted)} modules have weights but target_modules {_short_tm(tm)} does not select them "
                f"(PEFT leaves them unloaded): {_list(untargeted)}",
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
    if isinstance(tm, list):
        for t in tm:
            if not any(m.path == t or m.path.endswith("." + t) for m in sc.modules.values()) and not any(
                f".{t}." in f".{k}" for k in sc.other
            ):
                out.append(
                    TARGET_MISSING.finding(
                        sc.config_path,
                        f"target_modules has {t!r} but no saved tensor belongs to a {t!r} module "
                        f"({len(sc.modules)} adapted modules: "
                        f"{_list(sorted({m.target for m in sc.modules.values()}))})",
                        locator=f"/target_modules/{tm.index(t)}",
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


def _short_tm(tm: Any) -> str:
    if isinstance(tm, list) and len(tm) > 6:
        return f"[{', '.join(repr(t) for t in tm[:6])}, … {len(tm)} entries]"
    return repr(tm)


def non_finite(sc: Scan) -> list[Finding]:
    if not sc.non_finite:
        return []
    items = sorted(sc.non_finite.items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in items)
    desc = [f"{k} ({v} of {sc.tensors[k].numel})" for k, v in items]
    return [
        NON_FINITE.finding(
            sc.weights,
            f"{len(items)} of {len(sc.tensors)} tensors hold {total} non-finite values: {_list(desc, 4)}",
            locator=items[0][0],
            evidence={"tensors": {k: v for k, v in items[:200]}, "total": total},
        )
    ]


def dead(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    rms_tol = float(ctx.param(DEAD, "rms"))
    rows = []
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is None or sc.rank_of(m) == 0:  # AdaLoRA's budget can prune a module to rank 0: not dead
            continue
        # Linear LoRA starts with B = 0; embedding LoRA starts with lora_embedding_A = 0; AdaLoRA with E = 0
        # (its A and B are random), so there the update itself (E folded in) is what stays ≈ 0.
        if "E" in m.tensors:
            key, norm = m.tensors.get("B"), n.update_norm
        elif "B" in m.tensors:
            key, norm = m.tensors.get("B"), n.b_norm
        else:
            key, norm = m.tensors.get("emb_A"), n.a_norm
        if key is None:
            continue
        rows.append((m.path, norm / math.sqrt(max(sc.tensors[key].numel, 1))))
    if not rows:
        return []
    dead_mods = [p for p, rms in rows if rms <= rms_tol]
    if not dead_mods:
        return []
    all_dead = len(dead_mods) == len(rows)
    msg = (
        f"lora_B is ≈ 0 in all {len(rows)} modules (RMS ≤ {rms_tol:g}): the adapter is a no-op — never trained, "
        f"or gradients never reached it"
        if all_dead
        else f"lora_B is ≈ 0 (RMS ≤ {rms_tol:g}) in {len(dead_mods)} of {len(rows)} modules: {_list(dead_mods)}"
    )
    return [
        DEAD.finding(
            sc.weights,
            msg,
            locator=dead_mods[0],
            severity=None if all_dead else Severity.WARNING,
            evidence={"dead": len(dead_mods), "modules": len(rows), "b_rms": {p: r for p, r in rows[:300]}},
        )
    ]


def outliers(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    factor = float(ctx.param(OUTLIER, "factor"))
    min_layers = int(ctx.param(OUTLIER, "min_layers"))
    by_target: dict[str, list[tuple[int, str, float]]] = {}
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is not None and m.layer is not None:
            by_target.setdefault(sc.label(m), []).append((m.layer, m.path, n.update_norm))
    out = []
    for target, rows in sorted(by_target.items()):
        if len(rows) < min_layers:
            continue
        rows.sort()
        med = statistics.median(r[2] for r in rows)
        if med <= 0:
            continue
        bad = [(layer, p, v) for layer, p, v in rows if v > factor * med]
        if not bad:
            continue
        worst = max(bad, key=lambda r: r[2])
        out.append(
            OUTLIER.finding(
                sc.weights,
                f"{target}: update norm {worst[2]:.4g} in layer {worst[0]} is {worst[2] / med:.1f}x the median "
                f"{med:.4g} over {len(rows)} layers ({len(bad)} layers above {factor:g}x)",
                locator=worst[1],
                evidence={
                    "module": target,
                    "layers": [r[0] for r in rows],
                    "update_norm": [r[2] for r in rows],
                    "median": med,
                },
            )
        )
    return out


def underused(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    share = float(ctx.param(UNDERUSED, "share"))
    min_r = int(ctx.param(UNDERUSED, "min_r"))
    energy = float(ctx.param(UNDERUSED, "energy"))
    rows = []
    for m in sc.modules.values():
        n = sc.numbers.get(m.path)
        if n is None or n.update_norm == 0 or not len(n.singular):
            continue
        rows.append((m.path, len(n.singular), energy_rank(n.singular, energy), n.effective_rank))
    if not rows:
        return []
    r = max(row[1] for row in rows)
    if r < min_r:
        return []
    med_k = statistics.median(row[2] for row in rows)
    if med_k > share * r:
        return []
    p2 = 1 << max(0, math.ceil(math.log2(max(1, max(row[2] for row in rows)))))
    return [
        UNDERUSED.finding(
            sc.weights,
            f"median {energy:.0%}-energy rank is {med_k:g} of r = {r} over {len(rows)} modules "
            f"(max {max(row[2] for row in rows)}, median entropy rank "
            f"{statistics.median(row[3] for row in rows):.1f}); "
            f"r = {p2} would keep {energy:.0%} of every module's update",
            evidence={
                "r": r,
                "median_rank": med_k,
                "modules": [row[0] for row in rows[:300]],
                "rank_energy": [row[2] for row in rows[:300]],
                "effective_rank": [round(row[3], 3) for row in rows[:300]],
            },
        )
    ]


def _once_per_run(found: list[Finding], folder: Path, ctx: ProbeContext) -> list[Finding]:
    """ADP009 once per training run: checkpoint-N folders (and the final adapter beside them) fold into
    the first finding, which lists them all, instead of one copy per checkpoint."""
    if not found:
        return found
    run = folder.parent if re.fullmatch(r"checkpoint-\d+", folder.name) else folder
    first = ctx.shared.setdefault("adp009", {}).get(run)
    entry = {"path": folder.name, "median_rank": found[0].evidence.get("median_rank"), "r": found[0].evidence.get("r")}
    if first is None:
        found[0].evidence["checkpoints"] = [entry]
        ctx.shared["adp009"][run] = found[0]
        return found
    first.evidence["checkpoints"].append(entry)
    names = [c["path"] for c in first.evidence["checkpoints"]]
    first.message = first.message.split(" — in ")[0] + f" — in {len(names)} checkpoints: {', '.join(names)}"
    return []


def scaling(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    cfg = sc.config
    if cfg is None or not cfg.r or cfg.alpha is None or cfg.r <= 0:
        return []
    hi, lo = float(ctx.param(SCALING, "max_scale")), float(ctx.param(SCALING, "min_scale"))
    out = []
    pairs = {("", cfg.r, cfg.alpha)}
    for m in sc.modules:
        rr, aa = cfg.rank_for(m), cfg.alpha_for(m)
        if rr and aa is not None and (rr, aa) != (cfg.r, cfg.alpha):
            pairs.add((m, rr, aa))
    formula = "alpha/√r (use_rslora)" if cfg.use_rslora else "alpha/r"
    for where, rr, aa in sorted(pairs, key=lambda p: p[0]):
        s = aa / math.sqrt(rr) if cfg.use_rslora else aa / rr
        ev = {"r": rr, "alpha": aa, "scale": s, "use_rslora": cfg.use_rslora}
        label = f"{where}: " if where else ""
        if s > hi:
            extra = (
                f"; with rsLoRA the classic alpha = {aa:g} acts like alpha/r = {aa * math.sqrt(rr) / rr:.3g}·√r"
                if cfg.use_rslora and aa >= rr
                else ""
            )
            out.append(
                SCALING.finding(
                    sc.config_path,
                    f"{label}scale {formula} = {aa:g}/{_den(rr, cfg.use_rslora)} = {s:.3g} > "
                    f"{hi:g}{extra}",
                    locator=f"/{'alpha_pattern' if where else 'lora_alpha'}", evidence=ev,
                )
            )  # fmt: skip
        elif s < lo:
            out.append(
                SCALING.finding(
                    sc.config_path,
                    f"{label}scale {formula} = {aa:g}/{_den(rr, cfg.use_rslora)} = {s:.3g} < "
                    f"{lo:g}: the update is nearly switched off",
                    locator=f"/{'alpha_pattern' if where else 'lora_alpha'}", evidence=ev,
                )
            )  # fmt: skip
        if len(out) >= 5:
            break
    return out


def _den(r: int, rs: bool) -> str:
    return f"√{r}" if rs else str(r)


def dora(sc: Scan) -> list[Finding]:
    cfg = sc.config
    if cfg is None or not sc.tensors:
        return []
    lora_mods = [m for m in sc.modules.values() if "A" in m.tensors]
    with_mag = [m for m in lora_mods if "magnitude" in m.tensors]
    out = []
    if cfg.use_dora and len(with_mag) < len(lora_mods):
        out.append(
            DORA.finding(
                sc.weights,
                f"use_dora is true but {len(lora_mods) - len(with_mag)} of {len(lora_mods)} LoRA modules have "
                f"no lora_magnitude_vector",
            )
        )
    if not cfg.use_dora and with_mag:
        out.append(
            DORA.finding(
                sc.config_path,
                f"{len(with_mag)} modules carry lora_magnitude_vector (DoRA) but use_dora is false: loaders "
                f"will ignore them",
                locator="/use_dora",
            )
        )
    bad = {k: v for k, v in sc.magnitudes.items() if v[1] > 0}
    if bad:
        k, (mn, cnt) = next(iter(bad.items()))
        out.append(
            DORA.finding(
                sc.weights,
                f"{len(bad)} magnitude vectors have entries ≤ 0 (e.g. {k}: {cnt} entries, min {mn:.4g}); DoRA "
                f"magnitudes are column norms and must be > 0",
                locator=k,
                severity=Severity.WARNING,
            )
        )
    return out


def _norm_name(s: str) -> str:
    return s.strip().rstrip("/").lower()


def base_checks(sc: Scan, ctx: ProbeContext, artifact: Artifact) -> list[Finding]:
    cfg = sc.config
    out: list[Finding] = []
    name = cfg.raw.get("base_model_name_or_path") if cfg else None
    manifest = (ctx.rollout.manifest or {}).get("rollout", {}) if ctx.rollout else {}
    manifest = manifest if isinstance(manifest, dict) else {}
    if cfg is not None:
        if not name:
            out.append(
                BASE_NAME.finding(
                    sc.config_path,
                    "base_model_name_or_path is empty: nothing records which base this adapter "
                    "was trained on",
                    locator="/base_model_name_or_path",
                )
            )  # fmt: skip
        elif isinstance(manifest.get("base_model_name"), str):
            expected = manifest["base_model_name"]
            ok = _norm_name(name) == _norm_name(expected)
            base_path = manifest.get("base_model")
            if not ok and isinstance(base_path, str):
                from doctor.core.manifest import resolve

                p = Path(name)
                cand = p if p.is_absolute() else sc.folder / p
                try:
                    ok = cand.exists() and cand.resolve() == resolve(ctx.rollout.root, base_path).resolve()
                except OSError:
                    ok = False
            if not ok:
                out.append(
                    BASE_NAME.finding(
                        sc.config_path,
                        f"base_model_name_or_path is {name!r} but the rollout manifest names the base {expected!r}",
                        locator="/base_model_name_or_path",
                        evidence={"adapter": name, "manifest": expected},
                    )
                )
    refused = ctx.shared.get("doc010", {}).pop(sc.folder, None)
    if refused is not None:
        out.append(refused)
    if sc.base is None or not sc.tensors:
        return out
    cfg_path, how, raw_cfg = sc.base
    base = read_base_config(cfg_path)
    if base is None:
        return out
    d = base_dims(base)
    arch = sc.resolved.arch if sc.resolved is not None else architecture_for(raw_cfg)
    artifact.facts["base"] = {k: v for k, v in d.items() if k != "modules"} | {
        "config": str(cfg_path),
        "found_by": how,
        "family": arch.family if arch else None,
    }
    where = f"base {d['architecture'] or d['model_type']} ({how})"
    out += base_findings(sc, raw_cfg, arch, where)
    if sc.resolved is not None:
        artifact.facts["base"].update(module_share(sc))
    n_layers = d["layers"]
    if n_layers:
        beyond = sorted({m.layer for m in sc.modules.values() if m.layer is not None and m.layer >= n_layers})
        if sc.resolved is not None:
            beyond = sorted({m.layer for p, m in sc.modules.items() if p in sc.resolved.beyond and m.layer is not None})
        if beyond:
            first = next(m for m in sc.modules.values() if m.layer == beyond[0])
            out.append(
                BASE_SHAPES.finding(
                    sc.weights,
                    f"weights for layers {beyond[:10]} (e.g. {next(iter(first.tensors.values()))}) but {where} "
                    f"has num_hidden_layers = {n_layers} (indices 0–{n_layers - 1})",
                    locator=f"layers.{beyond[0]}",
                )
            )
    if d["vocab"] and arch is None:  # with the table, full copies are compared module by module (compat)
        for key, rows in sc.facts.get("vocab_dims", {}).items():
            if key != "lora_embedding_A" and rows != d["vocab"]:
                out.append(
                    BASE_SHAPES.finding(
                        sc.weights,
                        f"{key} has {rows} rows but {where} has vocab_size = {d['vocab']}: PEFT fails with a size "
                        f"mismatch unless the base's embeddings are resized to {rows} first (servers drop or "
                        "reject the added tokens)",
                        locator=key,
                    )
                )
    return out


def module_share(sc: Scan) -> dict[str, Any]:
    """Targeted module share and counts for `doctor inspect` (facts["base"])."""
    res = sc.resolved
    done, total = res.matching.share(res.arch)
    return {
        "adapted_modules": done,
        "linear_modules": total,
        "module_share": round(done / total, 4) if total else None,
        "adapted_parameters": sum(1 for t in res.matching.targets.values() if t.spec.kind == "param"),
        "unmodelled_modules": len(res.unmodelled),
    }


def adapter_facts(path: Path | str, *, sha256: bool | None = True) -> dict[str, Any]:
    """Facts of one adapter folder (the same dict the probe stores in artifact.facts, minus `base`)."""
    return scan_adapter(Path(path), want_sha256=sha256).facts


PROBES = [AdapterProbe()]
