"""Where a path written in a serving config (an adapter target, a model, a `--config` file) points.

Shared by the serving family (adapter/base compatibility) and the registry family (served files against
their registered sha256): both must agree on what a route means. A target is resolved against the
rollout root, through the server's volume mounts (`host:container`), and checked against the one path
policy (probes/common/paths.py): inside the rollout, declared in rollout.toml, or allowed by settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from doctor.core.probe import Rollout
from probes.common.paths import declared_paths, policy_for, within

_UNRESOLVED = re.compile(r"\$\{[A-Za-z_]|\$[A-Za-z_]|\$\([A-Za-z_]")


def has_unresolved(value: str) -> bool:
    """Whether a value still holds a shell/compose/k8s variable reference after interpolation."""
    return bool(_UNRESOLVED.search(value))


class Mounted(Protocol):
    """What resolution needs of a server: its volume mounts as (host, container) pairs."""

    volumes: Sequence[Sequence[str]]


@dataclass
class Resolved:
    path: Path | None
    status: str  # ok | outside | container | hub | unresolved
    written: str
    detail: str = ""


def resolve_target(
    target: str, server: Mounted, rollout: Rollout, ctx: Any, config_dir: Path | None = None
) -> Resolved:
    """`target` as written in a config (after interpolation) → a path on this machine, or why not.

    `ctx` is the probe's ProbeContext (its settings decide `[paths] allow_outside`).
    """
    root = rollout.root
    if not target or has_unresolved(target):
        return Resolved(None, "unresolved", target)
    allow = policy_for(ctx).allow_outside  # [paths] allow_outside (or the older [serving] allow_outside_root)
    trusted = declared_paths(rollout.root, rollout.manifest)
    raw = Path(os.path.expanduser(target))
    if raw.is_absolute():
        for host, cont in server.volumes:
            cont = cont.rstrip("/")
            if target == cont or target.startswith(cont + "/"):
                rest = target[len(cont) :].lstrip("/")
                h = Path(os.path.expanduser(host))
                if not h.is_absolute():
                    h = (config_dir or root) / h
                cand = h / rest if rest else h
                if within(cand, root) or allow or cand.resolve() in trusted:
                    return Resolved(cand, "ok", target, f"via volume {host}:{cont}")
                return Resolved(cand, "outside", target, f"via volume {host}:{cont}")
        if within(raw, root) or raw.resolve() in trusted:
            return Resolved(raw, "ok", target)
        if raw.exists():
            return Resolved(raw, "ok" if allow else "outside", target)
        return Resolved(None, "container", target)
    cand = root / raw
    if not within(cand, root) and cand.resolve() not in trusted:
        return Resolved(cand, "ok" if allow else "outside", target)
    first = raw.parts[0] if raw.parts else ""
    is_pathish = target.startswith((".", "~")) or cand.exists() or (root / first).exists() or "/" not in target
    if not is_pathish:
        return Resolved(None, "hub", target)
    return Resolved(cand, "ok", target)
