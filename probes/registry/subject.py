"""What the registry checks look at, prepared once: one registry file (artifact scope), and the rollout's
registries against what its servers route (rollout scope)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact
from doctor.core.probe import ProbeContext, Rollout
from probes.common.adapterinfo import remember
from probes.common.paths import PathPolicy, policy_for
from probes.registry.disk import EntryDisk, disk_facts
from probes.registry.lines import NameLines
from probes.registry.loaded import Loaded, load_registry, rollout_loaded
from probes.registry.rules import MISSING_ON_DISK, SHA_MISMATCH
from probes.registry.served import Served, rollout_served
from probes.registry.store import Registry, validate


def where(entry: dict[str, Any]) -> str:
    """How findings name an entry: `support-bot v2`."""
    return f"{entry['name']} v{entry['version']}"


def want_sha(ctx: ProbeContext) -> bool:
    """REG004 disabled: no hashing at all (a large registry is then checked from headers and configs only)."""
    return SHA_MISMATCH.id not in ctx.settings.disable


@dataclass
class RegistryFile:
    """One registry.yaml, validated, with the disk facts of each entry it may read."""

    path: Path
    reg: Registry
    line: NameLines
    problems: list[dict[str, Any]]  # store.validate()
    entries: list[tuple[int, dict[str, Any]]]  # (index, entry) with a usable name, version and path
    active: dict[str, list[int]]  # name → its active versions (duplicates included)
    folders: dict[int, Path | None]  # entry index → its folder (None: no path, or outside the target)
    disk: dict[str, EntryDisk]  # str(folder) → what is on disk
    want_sha: bool
    policy: PathPolicy

    def on_disk(self, i: int) -> tuple[Path, EntryDisk] | None:
        p = self.folders[i]
        d = self.disk.get(str(p)) if p is not None else None
        return (p, d) if p is not None and d is not None else None

    def facts(self) -> dict[str, Any]:
        """artifact.facts of the registry (doctor inspect; eval_slices' canary rules read `canaries`)."""
        return {
            "schema": self.reg.data.get("schema"),
            "adapters": len(self.reg.entries),
            "names": self.reg.names()[:100],
            "active": {n: max(v) for n, v in self.active.items()},
            # What other families need of a canary (eval_slices' canary rules), as plain facts.
            "canaries": [
                {k: e.get(k) for k in ("name", "version", "canary_plan", "rollback_to")}
                for e in self.reg.entries
                if isinstance(e, dict) and e.get("status") == "canary" and e.get("canary_plan")
            ],
            # Every version and its adapter folder as written (relative to this file's folder, like
            # Registry.entry_path): serving's compatibility matrix asks, for each, whether the rollout's
            # servers can load it.
            "versions": [
                {"name": e.get("name"), "version": e.get("version"), "status": e.get("status"), "path": e.get("path")}
                for e in self.reg.entries
                if isinstance(e, dict)
            ],
        }


def prepare_file(artifact: Artifact, ctx: ProbeContext) -> RegistryFile:
    """Read and validate one registry, say (DOC010) which entry paths are outside the target, and read
    the disk facts of the others (in parallel for large registries)."""
    loaded = load_registry(artifact.path, ctx)
    reg, line = loaded.reg, loaded.line
    problems = validate(reg)
    bad_idx = {p["index"] for p in problems if p["field"] in ("name", "version", "path", None)}
    entries = [(i, e) for i, e in enumerate(reg.entries) if isinstance(e, dict) and i not in bad_idx]
    active: dict[str, list[int]] = {}
    for _, e in entries:
        if e.get("status") == "active":
            active.setdefault(e["name"], []).append(e["version"])
    policy = policy_for(ctx)  # the one path policy (probes/common/paths.py): entries outside are not read
    folders = {i: reg.entry_path(e) for i, e in entries}
    for i, e in entries:
        p = folders[i]
        if p is not None and not policy.allows(p):
            policy.refuse(artifact.path, p, f"{where(e)} path", locator=where(e), line=line(e["name"]))
            folders[i] = None
    sha = want_sha(ctx)
    workers = int(ctx.param(MISSING_ON_DISK, "workers")) or (os.cpu_count() or 1)
    disk = disk_facts(
        [str(p) for p in folders.values() if p is not None],
        sha,
        workers,
        int(ctx.param(MISSING_ON_DISK, "parallel_min")),
    )
    for d in disk.values():
        if d.info is not None and d.key is not None:
            remember(ctx, d.key, d.info)
    return RegistryFile(artifact.path, reg, line, problems, entries, active, folders, disk, sha, policy)


@dataclass
class Routing:
    """The rollout's registries and the servers of its serving configs (the serving probe's facts)."""

    rollout: Rollout
    registries: list[tuple[Artifact | None, Loaded]]
    servers: list[Served]
    want_sha: bool
    routed: set[str] = field(default_factory=set)  # every adapter name some server routes


def prepare_routing(rollout: Rollout, ctx: ProbeContext) -> Routing:
    servers = rollout_served(rollout)
    routed = {name for s in servers for name in s.routes}
    return Routing(rollout, rollout_loaded(rollout, ctx), servers, want_sha(ctx), routed)
