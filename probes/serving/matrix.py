"""The compatibility matrix `doctor inspect --matrix` prints: base model × adapter × quantization × engine.

```python
from probes.serving.matrix import compatibility_matrix, render_matrix
rows = compatibility_matrix(report)        # a Report (after `engine.scan/check`) or a list of Rollouts
print(render_matrix(rows, fmt="text"))     # or fmt="markdown"
```
Each row: {"rollout", "config", "server", "engine", "base_model", "adapter", "version", "status",
"quantization", "served", "ok", "why": [{"rule", "message"}]}. `ok` is None when doctor could not check
(adapter only in the container, outside the rollout, unresolved variable) and `why` then says why.
Rows cover every adapter a server routes plus every registry version of this rollout (can the server
take it — e.g. a rollback target — even though it is not routed now).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.model import display_path
from doctor.core.probe import ProbeContext, Rollout
from probes.common.adapterinfo import adapter_info
from probes.serving import engines


def _rows_for(rollout: Rollout, ctx: ProbeContext) -> list[dict[str, Any]]:
    from probes.registry.probe import rollout_registries
    from probes.serving.probe import adapter_checks, adapter_missing, resolve_target, rollout_servers, served_base

    rows: list[dict[str, Any]] = []
    registries = [reg for _, reg in rollout_registries(rollout)]
    for artifact, server in rollout_servers(rollout):
        base = served_base(server, rollout, ctx, artifact.path)
        named = [n for n in base.names if not n.startswith(("/", "."))]
        base_name = (base.manifest_name if base.is_manifest_base else None) or (named or base.names or ["?"])[0]
        quant = server.quantization or base.quant_method or "none"
        common = {
            "rollout": display_path(rollout.root),
            "config": display_path(artifact.path),
            "server": server.name,
            "engine": engines.version_label(server.engine, server.version),
            "base_model": base_name,
            "quantization": quant,
        }
        seen: set[Path] = set()
        targets: list[tuple[str, Any, str | None, Path | None, str | None, Any]] = []
        for ref in server.adapters:
            res = resolve_target(ref.target, server, rollout, ctx, artifact.path.parent)
            why = (
                None
                if res.status == "ok"
                else {
                    "outside": "path outside the rollout (not followed)",
                    "container": "container-only path (cannot verify)",
                    "hub": "hub id (cannot verify)",
                    "unresolved": "unresolved variable in the path",
                }[res.status]
            )
            version, status = None, None
            for reg in registries:
                for e in reg.versions(ref.name):
                    p = reg.entry_path(e)
                    if res.path is not None and p is not None and p.resolve() == res.path.resolve():
                        version, status = e.get("version"), e.get("status")
            targets.append((ref.name, version, status, res.path, why, ref))
            if res.path is not None:
                seen.add(res.path.resolve())
        for reg in registries:
            for e in reg.entries:
                if not isinstance(e, dict):
                    continue
                p = reg.entry_path(e)
                if p is None or p.resolve() in seen:
                    continue
                targets.append((str(e.get("name")), e.get("version"), e.get("status"), p, None, None))
        for name, version, status, folder, why, ref in targets:
            row = {**common, "adapter": name, "version": version, "status": status, "served": ref is not None}
            if why is not None or folder is None:
                row.update(ok=None, why=[{"rule": "", "message": why or "no path"}])
            else:
                missing = adapter_missing(folder)
                if missing:
                    row.update(ok=False, why=[{"rule": "SRV015", "message": missing}])
                else:
                    checks = adapter_checks(server, ref, adapter_info(folder, ctx), base, folder)
                    row.update(ok=not checks, why=[{"rule": r.id, "message": m} for r, m, _ in checks])
            rows.append(row)
    return rows


def rollout_matrix(rollout: Rollout, ctx: ProbeContext) -> list[dict[str, Any]]:
    """Compute the rows and keep them on the rollout's serving-config artifacts (facts["compatibility"])."""
    rows = _rows_for(rollout, ctx)
    for a in rollout.of_kind("serving_config"):
        shown = display_path(a.path)
        a.facts["compatibility"] = [r for r in rows if r["config"] == shown]
    return rows


def compatibility_matrix(report_or_rollouts: Any, settings: Any = None) -> list[dict[str, Any]]:
    """Rows from a Report's artifacts (computed during the scan) or computed now for a list of Rollouts."""
    artifacts = getattr(report_or_rollouts, "artifacts", None)
    if artifacts is not None:
        rows: list[dict[str, Any]] = []
        for a in artifacts:
            if a.kind == "serving_config":
                rows.extend(a.facts.get("compatibility", []))
        return rows
    from doctor.core.settings import Settings

    rollouts = [report_or_rollouts] if isinstance(report_or_rollouts, Rollout) else list(report_or_rollouts)
    out: list[dict[str, Any]] = []
    for r in rollouts:
        ctx = ProbeContext(settings=settings or Settings(), rollout=r)
        if any(not a.facts.get("servers") for a in r.of_kind("serving_config")):
            from probes.serving.probe import ServingProbe

            probe = ServingProbe()
            for a in r.of_kind("serving_config"):
                if not a.facts.get("servers"):
                    try:
                        list(probe.check(a, ctx))
                    except Exception:
                        continue
        out.extend(_rows_for(r, ctx))
    return out


def _cell(row: dict[str, Any]) -> str:
    if row["ok"] is True:
        return "ok"
    if row["ok"] is None:
        return "? " + "; ".join(w["message"] for w in row["why"])
    return "✗ " + "; ".join(f"{w['rule']} {w['message']}".strip() for w in row["why"])


def render_matrix(rows: list[dict[str, Any]], fmt: str = "text") -> str:
    """Plain text (aligned columns) or a markdown table."""
    head = ["base model", "adapter", "version", "status", "quantization", "engine", "config", "verdict"]
    body = [
        [
            str(r["base_model"]),
            str(r["adapter"]) + ("" if r["served"] else " (not routed)"),
            "" if r["version"] is None else f"v{r['version']}",
            r["status"] or "",
            str(r["quantization"]),
            str(r["engine"]),
            f"{r['config']} [{r['server']}]",
            _cell(r),
        ]
        for r in rows
    ]
    if not rows:
        return "no serving configs: nothing to match adapters against\n"
    if fmt == "markdown":
        esc = [[c.replace("|", "\\|") for c in line] for line in body]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(line) + " |" for line in esc]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(head[:-1])]
    out = ["  ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + "  " + head[-1]]
    for line in body:
        out.append("  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1])
    return "\n".join(out) + "\n"
