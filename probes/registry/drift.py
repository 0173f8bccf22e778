"""REG004: adapter files that no longer hash to the sha256 the registry recorded.

Two stages of one check: the registry's own entries when the registry file is checked (its disk pass
hashed them, in parallel for a large registry), and, once every serving config was read, the files the
servers actually load (a copy elsewhere, a stale cache) against the registered versions of their name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from doctor.core.model import Finding, display_path
from doctor.core.probe import ProbeContext
from probes.common.safetensors_io import sha256_file
from probes.common.targets import resolve_target
from probes.registry.rules import CHECKS, SHA_MISMATCH
from probes.registry.store import WEIGHTS
from probes.registry.subject import RegistryFile, Routing, where


@CHECKS(SHA_MISMATCH, scope=("artifact", "rollout"))
def sha_mismatch(subject: RegistryFile | Routing, ctx: ProbeContext) -> Iterator[Finding]:
    """Per registry file: each entry's file (hashed by the disk pass) against its sha256. Per rollout: each
    file a server routes against the sha256s the registry records for that name (its live versions)."""
    if not subject.want_sha:
        return iter(())
    if isinstance(subject, RegistryFile):
        return _registered_drift(subject)
    return _served_drift(subject, ctx)


def _registered_drift(f: RegistryFile) -> Iterator[Finding]:
    for i, e in f.entries:
        found = f.on_disk(i)
        sha = e.get("sha256")
        if found is None or not found[1].weights or not isinstance(sha, str):
            continue
        p, d = found
        if d.sha256 and d.sha256 != sha.lower():
            yield SHA_MISMATCH.finding(
                f.path,
                f"{where(e)}: {display_path(p / WEIGHTS)} hashes to {d.sha256[:12]}…, registry says {sha[:12]}…",
                locator=where(e),
                evidence={"file": str(p / WEIGHTS), "registry": sha, "actual": d.sha256},
                line=f.line(sha, e["name"]),
            )


def _served_drift(r: Routing, ctx: ProbeContext) -> Iterator[Finding]:
    if not r.registries:
        return
    hashed: dict[Path, str] = {}
    for server in r.servers:
        for ref in server.adapters:
            entries = [(loaded.reg, e) for _, loaded in r.registries for e in loaded.reg.versions(ref.name)]
            if not entries:
                continue  # REG008
            res = resolve_target(ref.target, server, r.rollout, ctx, server.config.parent)
            if res.status != "ok" or res.path is None:
                continue
            weights = res.path / WEIGHTS
            if not weights.is_file():
                continue
            same = [
                e for reg, e in entries if (p := reg.entry_path(e)) is not None and p.resolve() == res.path.resolve()
            ]
            if same:
                continue  # the registered file itself: compared with its entry above
            live = [e for _, e in entries if e.get("status") in ("active", "canary")] or [e for _, e in entries]
            expected = {str(e.get("sha256")).lower() for e in live if isinstance(e.get("sha256"), str)}
            if not expected:
                continue
            key = weights.resolve()
            if key not in hashed:
                hashed[key] = sha256_file(weights)
            if hashed[key] not in expected:
                vs = ", ".join(f"v{e.get('version')}" for e in live)
                yield SHA_MISMATCH.finding(
                    server.config,
                    f"{server.name}: served {ref.name} ({ref.target}) hashes to {hashed[key][:12]}…, "
                    f"matching no registered version ({vs})",
                    locator=f"{server.name}: {ref.name}",
                    evidence={"file": str(weights), "actual": hashed[key], "registry": sorted(expected)},
                    line=ref.line,
                )
