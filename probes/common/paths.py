"""One policy for paths that input files name (shared by every probe family).

A path is followed when it lies inside the rollout, or the rollout manifest declares it (a shared base
model beside the rollout, as in the demo world; adapters, data, eval and serving files it lists), or the
settings allow outside paths (`[paths] allow_outside = true`; serving's older `[serving]
allow_outside_root` counts too). Anything else an input file names outside the target (an adapter's
`base_model_name_or_path`, a registry entry, a launch file's path) is not read: the probe says so with
DOC010 instead, so a report made in CI on untrusted content never carries a file from elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.checks import DOC_CHECKS
from doctor.core.model import Finding
from doctor.core.rules import DOC_OUTSIDE_TARGET
from doctor.core.session import ScanSession

# Manifest keys that hold paths: (table, key); a list value declares each item.
_DECLARED = (
    ("rollout", "base_model"),
    ("data", "train"),
    ("data", "eval_set"),
    ("eval", "eval_set"),
    ("eval", "baseline"),
    ("eval", "candidates"),
    ("serving", "configs"),
    ("serving", "registry"),
    ("training", "log_dir"),
)


def _resolved(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def within(path: Path, root: Path) -> bool:
    """Whether `path` lies at or under `root`, both resolved (links followed)."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def declared_paths(root: Path, manifest: dict[str, Any] | None) -> list[Path]:
    """Every path the rollout manifest declares, resolved against the manifest's folder."""
    m = manifest or {}
    values: list[Any] = []
    for table, key in _DECLARED:
        tbl = m.get(table)
        if isinstance(tbl, dict):
            v = tbl.get(key)
            values.extend(v if isinstance(v, list) else [v])
    for a in m.get("adapters") or []:
        if isinstance(a, dict):
            values.append(a.get("path"))
    out = []
    for v in values:
        if isinstance(v, str) and v:
            p = Path(os.path.expanduser(v))
            out.append(_resolved(p if p.is_absolute() else root / p))
    return out


@dataclass
class PathPolicy:
    root: Path
    declared: list[Path] = field(default_factory=list)
    allow_outside: bool = False
    # The scan the policy reports to: `refuse` defers DOC010 there (so a family's own checks raise only
    # their own rules); None in callers outside a scan, which use `finding` directly.
    session: ScanSession | None = None

    def allows(self, path: Path) -> bool:
        """Whether doctor may read `path` (a file or a folder)."""
        if self.allow_outside:
            return True
        p = _resolved(path)
        return _under(p, _resolved(self.root)) or any(_under(p, d) for d in self.declared)

    def refuse(self, source: Path | None, path: Path, what: str, *, locator: str = "", line: int = 1) -> None:
        """Say (DOC010, through the scan) that `path`, named by `source`, was not followed."""
        assert self.session is not None, "refuse() needs the policy of a scan (policy_for(ctx))"
        self.session.defer(self.finding(source, path, what, locator=locator, line=line))

    @DOC_CHECKS(DOC_OUTSIDE_TARGET, scope="scan")
    def finding(self, source: Path | None, path: Path, what: str, *, locator: str = "", line: int = 1) -> Finding:
        """DOC010 on `source` (the file that names `path`): `what` says which field named it."""
        return DOC_OUTSIDE_TARGET.finding(
            source,
            f"{what} {path} is outside the rollout {self.root} and not declared in rollout.toml; not read "
            "([paths] allow_outside = true follows it)",
            locator=locator,
            evidence={"path": str(path), "rollout": str(self.root)},
            line=line,
        )


def policy_for(ctx: Any) -> PathPolicy:
    """The policy for a probe's rollout (`ctx` is a ProbeContext)."""
    rollout = ctx.rollout
    allow = bool(ctx.section("paths").get("allow_outside")) or bool(ctx.section("serving").get("allow_outside_root"))
    return PathPolicy(rollout.root, declared_paths(rollout.root, rollout.manifest), allow, ctx.session)
