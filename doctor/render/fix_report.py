"""`doctor fix` on the console: the verdict, one line per attempt, the best attempt and what is still wrong."""

from __future__ import annotations

import json
from typing import Any


def version_text(version: Any) -> str:
    return f"v{version}" if version is not None else "no version"


def value_text(v: Any) -> str:
    if v is None:
        return "unset"  # the recipe did not have the setting
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def render(report: dict[str, Any]) -> str:
    lines = [f"doctor fix {report['rollout']}: {report['verdict'].replace('_', ' ').upper()}"]
    for a in report["attempts"]:
        changes = (
            ", ".join(f"{k} {value_text(x)}→{value_text(y)}" for k, (x, y) in a["changes"].items())
            or "no recipe change"
        )
        head = f"  attempt {a['attempt']}: {version_text(a['version']):<4} {a['verdict']:<12} {a['wall_s']:>6.0f}s"
        lines.append(f"{head}  job {a['job']}  ({changes})")
    if report["attempts"]:
        lines.append(
            f"  best: attempt {report['best_attempt']} ({version_text(report['best_version'])}); "
            f"stopped: {report['stopped']}"
        )
    else:
        lines.append(f"  no job ran: {report['stopped']}")
    if report["still_wrong"]:
        lines.append(f"  still wrong: {report['still_wrong']}")
    if report["attempts"]:  # no attempt writes no fix log
        lines.append(f"  fix log: {report['fix_log']}   total {report['elapsed_s']:.0f}s")
    return "\n".join(lines)
