"""The compatibility matrix `doctor inspect --matrix` prints: base model × adapter × quantization × engine.

Computed at rollout scope from the prepared `ServingRollout` and kept on each serving-config artifact as
facts["compatibility"] (rendering: doctor/render/matrix.py). Each row: {"rollout", "config", "server",
"engine", "base_model", "adapter", "version", "status", "quantization", "served", "ok", "why": [{"rule",
"message"}]}. `ok` is None when doctor could not check (adapter only in the container, outside the
rollout, unresolved variable) and `why` then says why; else the verdict of the COMPAT rules
(probes.serving.checks.compat). Rows cover every adapter a server routes plus every registry version of
this rollout (can the server take it — e.g. a rollback target — even though it is not routed now): the
registry probe publishes them as its artifacts' facts["versions"] ({name, version, status, path}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.model import display_path
from doctor.core.probe import ProbeContext
from probes.common.adapterinfo import adapter_info
from probes.serving import engines
from probes.serving.checks import compat  # noqa: F401  (registers the COMPAT checks run below)
from probes.serving.rules import ADAPTER_NOT_FOUND, CHECKS, COMPAT
from probes.serving.subjects import Pair, Pairs, Served, ServingRollout, adapter_missing

_WHY = {
    "outside": "path outside the rollout (not followed)",
    "container": "container-only path (cannot verify)",
    "hub": "hub id (cannot verify)",
    "unresolved": "unresolved variable in the path",
}


def _registry_versions(subject: ServingRollout) -> list[list[dict[str, Any]]]:
    """Each registry's versions from the registry probe's facts (a registry it could not read has none),
    with "path" made the adapter folder: as written, relative to the registry file's folder."""
    out = []
    for a in subject.rollout.of_kind("registry"):
        versions = a.facts.get("versions")
        if isinstance(versions, list):
            out.append([{**v, "path": _folder(a.path.parent, v.get("path"))} for v in versions if isinstance(v, dict)])
    return out


def _folder(registry_dir: Path, written: Any) -> Path | None:
    if not isinstance(written, str) or not written:
        return None
    p = Path(written).expanduser()
    return p if p.is_absolute() else registry_dir / p


def _same(p: Any, q: Path | None) -> bool:
    return isinstance(p, Path) and q is not None and p.resolve() == q.resolve()


def _verdict(pair: Pair, ctx: ProbeContext) -> dict[str, Any]:
    found = CHECKS.run("rollout", Pairs([pair]), ctx, applies=lambda rule: rule.has(COMPAT))
    return {"ok": not found, "why": [{"rule": f.rule, "message": f.message} for f in found]}


def _rows_for(s: Served, registries: list[list[dict[str, Any]]], rollout_root: Path, ctx: ProbeContext) -> list:
    server, base = s.server, s.base
    named = [n for n in base.names if not n.startswith(("/", "."))]
    base_name = (base.manifest_name if base.is_manifest_base else None) or (named or base.names or ["?"])[0]
    common = {
        "rollout": display_path(rollout_root),
        "config": display_path(s.artifact.path),
        "server": server.name,
        "engine": engines.version_label(server.engine, server.version),
        "base_model": base_name,
        "quantization": server.quantization or base.quant_method or "none",
    }
    seen: set[Path] = set()
    targets: list[tuple[str, Any, str | None, Path | None, str | None, Any]] = []
    for r in s.routes:
        version, status = None, None
        for reg in registries:
            for e in reg:
                if e.get("name") == r.ref.name and _same(e.get("path"), r.res.path):
                    version, status = e.get("version"), e.get("status")
        why = None if r.res.status == "ok" else _WHY[r.res.status]
        targets.append((r.ref.name, version, status, r.res.path, why, r.ref))
        if r.res.path is not None:
            seen.add(r.res.path.resolve())
    for reg in registries:
        for e in reg:
            p = e.get("path")
            if not isinstance(p, Path) or p.resolve() in seen:
                continue
            targets.append((str(e.get("name")), e.get("version"), e.get("status"), p, None, None))
    rows = []
    for name, version, status, folder, why, ref in targets:
        row = {**common, "adapter": name, "version": version, "status": status, "served": ref is not None}
        if why is not None or folder is None:
            row.update(ok=None, why=[{"rule": "", "message": why or "no path"}])
        elif missing := adapter_missing(folder):
            row.update(ok=False, why=[{"rule": ADAPTER_NOT_FOUND.id, "message": missing}])
        else:
            row.update(_verdict(Pair(s.artifact, server, ref, adapter_info(folder, ctx), base, folder), ctx))
        rows.append(row)
    return rows


def rollout_matrix(subject: ServingRollout, ctx: ProbeContext) -> list[dict[str, Any]]:
    """Compute the rows and keep them on the rollout's serving-config artifacts (facts["compatibility"])."""
    registries = _registry_versions(subject)
    rows = [row for s in subject.served for row in _rows_for(s, registries, subject.rollout.root, ctx)]
    for a in subject.rollout.of_kind("serving_config"):
        shown = display_path(a.path)
        a.facts["compatibility"] = [r for r in rows if r["config"] == shown]
    return rows
