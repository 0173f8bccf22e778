"""The compatibility matrix (`doctor inspect --matrix`): rows the serving probe kept on each serving-config
artifact (facts["compatibility"], see probes.serving.matrix), as aligned text or a markdown table.

```python
from doctor.render.matrix import compatibility_matrix, render_matrix
rows = compatibility_matrix(report)        # a Report (after `engine.scan/check`) or a list of Rollouts
print(render_matrix(rows, fmt="text"))     # or fmt="markdown"
```
"""

from __future__ import annotations

from typing import Any

from doctor.core.probe import Rollout
from doctor.core.settings import Settings

# The artifacts the matrix is made of: serving configs (servers, routes) and registries (their versions).
MATRIX_KINDS = frozenset({"serving_config", "registry"})


def compatibility_matrix(report_or_rollouts: Any, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Rows from a Report's artifacts (computed during the scan), or from Rollouts scanned now (by the engine,
    with only the probes of the matrix's artifacts)."""
    artifacts = getattr(report_or_rollouts, "artifacts", None)
    if artifacts is None:
        from doctor.engine import scan
        from probes import load_probes

        rollouts = [report_or_rollouts] if isinstance(report_or_rollouts, Rollout) else list(report_or_rollouts)
        probes = [p for p in load_probes() if p.kinds & MATRIX_KINDS]
        artifacts = [a for r in rollouts for a in scan([r.root], settings or Settings(), probes=probes).artifacts]
    return [row for a in artifacts if a.kind == "serving_config" for row in a.facts.get("compatibility", [])]


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
