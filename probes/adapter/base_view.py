"""The base model an adapter is checked against, found and resolved once per scan for every check.

`plan_base` runs inside the scan, after the safetensors header and before the tensors: it finds the base's
config.json, resolves every saved module to the base module (or MoE parameter) it sits on and notes the
experts a parameter wrapper stacks, so the tensor pass computes per-expert numbers. `view_base` runs after
the scan: the base's numbers (dims), its architecture and the resolution the ADP012/013/015 checks and
facts["base"] read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.probe import ProbeContext
from probes.adapter.compat import Resolved, resolve
from probes.common.paths import policy_for
from probes.common.peft.arch import Architecture, architecture_for
from probes.common.peft.basemodel import base_dims, find_base_config, read_config_json, text_config

if TYPE_CHECKING:
    from probes.adapter.scan import Scan


@dataclass
class BaseView:
    config_path: Path
    found_by: str
    raw: dict[str, Any]  # config.json as written (a VLM keeps its text_config nested)
    dims: dict[str, Any]  # base_dims of the text tower
    arch: Architecture | None  # None: model_type not in the table (ADP015)
    resolved: Resolved | None  # saved modules → base modules; None when arch is

    @property
    def where(self) -> str:
        """How findings name the base: its architecture (or model_type) and how it was found."""
        return f"base {self.dims['architecture'] or self.dims['model_type']} ({self.found_by})"


def plan_base(sc: Scan, ctx: ProbeContext) -> None:
    """Before the tensors are read: find the base's config.json, resolve every saved module to the base module
    or parameter it sits on (sc.resolved) and note the MoE parameter wrappers (sc.experts). A base named by
    base_model_name_or_path outside the target is not read (DOC010 through the scan)."""
    name = sc.config.raw.get("base_model_name_or_path") if sc.config else None
    cfg_path, how = find_base_config(sc.folder, ctx.rollout, name if isinstance(name, str) else None)
    if cfg_path is None:
        return
    policy = policy_for(ctx)
    if how == "adapter base_model_name_or_path" and not policy.allows(cfg_path):  # probes/common/paths.py: not read
        policy.refuse(sc.config_path, cfg_path.parent, "base_model_name_or_path")
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


def view_base(sc: Scan) -> BaseView | None:
    """The base the checks compare with, or None (no base found, unreadable, or no tensors to compare)."""
    if sc.base is None or not sc.tensors:
        return None
    cfg_path, how, raw = sc.base
    arch = sc.resolved.arch if sc.resolved is not None else architecture_for(raw)
    resolved = sc.resolved
    if resolved is None and arch is not None:  # no adapter config to plan with: resolve against {} (all unselected)
        resolved = resolve(sc.modules, sc.config or {}, arch)
    return BaseView(cfg_path, how, raw, base_dims(text_config(raw)), arch, resolved)


def base_facts(view: BaseView) -> dict[str, Any]:
    """facts["base"]: the base's numbers, where its config is, how it was found, and (table known) how much
    of it the adapter adapts."""
    out = {k: v for k, v in view.dims.items() if k != "modules"} | {
        "config": str(view.config_path),
        "found_by": view.found_by,
        "family": view.arch.family if view.arch else None,
    }
    if view.resolved is not None:
        out.update(module_share(view.resolved))
    return out


def module_share(res: Resolved) -> dict[str, Any]:
    """Targeted module share and counts for `doctor inspect` (facts["base"])."""
    done, total = res.matching.share(res.arch)
    return {
        "adapted_modules": done,
        "linear_modules": total,
        "module_share": round(done / total, 4) if total else None,
        "adapted_parameters": sum(1 for t in res.matching.targets.values() if t.spec.kind == "param"),
        "unmodelled_modules": len(res.unmodelled),
    }
