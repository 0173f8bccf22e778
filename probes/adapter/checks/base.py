"""The adapter against its base model: the name it records (ADP014), a base outside doctor's table (ADP015),
shapes, layer count and vocabulary (ADP012), module names as PEFT matches them (ADP013). The base is found and
resolved once per scan (probes/adapter/base_view.py, `sc.base_view`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from doctor.core.model import Finding, Severity
from doctor.core.probe import ProbeContext
from probes.adapter.compat import Resolved, full_copy_problems, shape_problems
from probes.adapter.rules import BASE_NAME, BASE_NAMES, BASE_SHAPES, BASE_UNKNOWN, CHECKS
from probes.adapter.text import listed, short_tm

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


def _norm_name(s: str) -> str:
    return s.strip().rstrip("/").lower()


@CHECKS(BASE_NAME, scope="artifact")
def base_name(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    """base_model_name_or_path empty, or another base than rollout.toml's base_model_name (unless it is the
    same local folder as the manifest's base_model)."""
    cfg = sc.config
    if cfg is None:
        return []
    name = cfg.raw.get("base_model_name_or_path")
    if not name:
        return [
            BASE_NAME.finding(
                sc.config_path,
                "base_model_name_or_path is empty: nothing records which base this adapter "
                "was trained on",
                locator="/base_model_name_or_path",
            )
        ]  # fmt: skip
    manifest = (ctx.rollout.manifest or {}).get("rollout", {}) if ctx.rollout else {}
    manifest = manifest if isinstance(manifest, dict) else {}
    if not isinstance(manifest.get("base_model_name"), str):
        return []
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
    if ok:
        return []
    return [
        BASE_NAME.finding(
            sc.config_path,
            f"base_model_name_or_path is {name!r} but the rollout manifest names the base {expected!r}",
            locator="/base_model_name_or_path",
            evidence={"adapter": name, "manifest": expected},
        )
    ]


@CHECKS(BASE_UNKNOWN, scope="artifact")
def base_unknown(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    view = sc.base_view
    if view is None or view.arch is not None:
        return []
    raw = view.raw
    mt = raw.get("model_type") or (raw.get("text_config") or {}).get("model_type")
    return [
        BASE_UNKNOWN.finding(
            sc.config_path or sc.weights,
            f"{view.where}: model_type {mt!r} is not in doctor's architecture table; module names and shapes "
            "were not compared with the base (layer count and vocabulary were)",
            locator="/base_model_name_or_path",
        )
    ]


@CHECKS(BASE_SHAPES, scope="artifact")
def base_shapes(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    """Tensors whose base-facing dimension differs from the base module's, layers the base does not have,
    full embedding copies of another vocabulary size."""
    view = sc.base_view
    if view is None:
        return []
    out: list[Finding] = []
    where, arch, res = view.where, view.arch, view.resolved
    if arch is not None and res is not None:
        bad = shape_problems(sc, res) + full_copy_problems(sc, arch)
        if bad:
            out.append(
                BASE_SHAPES.finding(
                    sc.weights,
                    f"{len(bad)} tensors do not fit {where}: " + listed([f"{k}: {msg}" for k, msg in bad], 3),
                    locator=bad[0][0],
                    evidence={"mismatches": [f"{k}: {msg}" for k, msg in bad[:50]], "hidden": arch.hidden},
                )
            )
    n_layers = view.dims["layers"]
    if n_layers:
        if res is not None:
            beyond = sorted({m.layer for p, m in sc.modules.items() if p in res.beyond and m.layer is not None})
        else:
            beyond = sorted({m.layer for m in sc.modules.values() if m.layer is not None and m.layer >= n_layers})
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
    vocab = view.dims["vocab"]
    if vocab and arch is None:  # with the table, full copies are compared module by module (above)
        for key, rows in sc.facts.get("vocab_dims", {}).items():
            if key != "lora_embedding_A" and rows != vocab:
                out.append(
                    BASE_SHAPES.finding(
                        sc.weights,
                        f"{key} has {rows} rows but {where} has vocab_size = {vocab}: PEFT fails with a size "
                        f"mismatch unless the base's embeddings are resized to {rows} first (servers drop or "
                        "reject the added tokens)",
                        locator=key,
                    )
                )
    return out


@CHECKS(BASE_NAMES, scope="artifact")
def base_names(sc: Scan, ctx: ProbeContext) -> list[Finding]:
    """Saved modules the base lacks; target_modules matching nothing, unsupported modules, or (a warning)
    entries that match nothing while others do — matched the way PEFT matches them."""
    view = sc.base_view
    if view is None or view.arch is None or view.resolved is None:
        return []
    arch, res, where = view.arch, view.resolved, view.where
    weights: Path = sc.weights
    cfg_path = sc.config_path or weights
    out: list[Finding] = []
    if res.missing:
        keys = [next(iter(sc.modules[p].tensors.values())) for p in res.missing]
        names = sorted({p.rsplit(".", 1)[-1] for p in res.missing})
        out.append(
            BASE_NAMES.finding(
                weights,
                f"{len(res.missing)} adapted modules do not exist in {where} ({listed(names, 5)}): "
                f"{listed(keys, 3)}; its adaptable modules are {listed(sorted(arch.module_names()), 12)}",
                locator=keys[0],
                evidence={"missing": res.missing[:100], "known": sorted(arch.module_names())},
            )
        )
    m = res.matching
    tm = sc.config.target_modules if sc.config is not None else None
    has_params = bool(sc.config is not None and sc.config.get("target_parameters"))
    nothing = m.nothing_matched and not (m.modules_to_save or m.unsupported or res.unmodelled)
    if sc.config is not None and (tm is not None or has_params) and nothing:
        out.append(
            BASE_NAMES.finding(
                cfg_path,
                f"target_modules {short_tm(tm)} matches no module of {where}: PEFT raises 'Target modules … not "
                "found in the base model'",
                locator="/target_modules",
            )
        )
    if m.unsupported:
        out.append(
            BASE_NAMES.finding(
                cfg_path,
                f"target_modules {short_tm(tm)} selects {len(m.unsupported)} modules of {where} that are not "
                f"Linear/Conv1D/Embedding ({listed(m.unsupported, 3)}): PEFT raises 'Target module … is not "
                "supported' when it loads this adapter",
                locator="/target_modules",
                evidence={"unsupported": m.unsupported[:50]},
            )
        )
    unmatched = [] if nothing else [e for e in m.unmatched_entries if not _has_unmodelled(res, e)]
    if unmatched:
        out.append(
            BASE_NAMES.finding(
                cfg_path,
                f"target_modules entries {listed(unmatched, 5)} match no module of {where} (PEFT "
                f"ignores them); its adaptable modules are {listed(sorted(arch.module_names()), 12)}",
                locator="/target_modules",
                severity=Severity.WARNING,
                evidence={"unknown": unmatched, "known": sorted(arch.module_names())},
            )
        )
    return out


def _has_unmodelled(res: Resolved, entry: str) -> bool:
    """A target_modules entry that names saved modules of a VLM's vision tower (not in the table)."""
    return any(p == entry or p.endswith("." + entry) for p in res.unmodelled)
