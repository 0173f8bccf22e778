"""REG rules: the adapter registry's own integrity, and the registry against what the servers route.

Per registry file, the disk work per entry (adapter folder present, adapter_config.json + safetensors
header, sha256 of the weights) runs in a process pool when the registry has at least `parallel_min`
entries (REG007 params: parallel_min = 256, workers = 0 → all cores). Disabling REG004 skips hashing,
so a large registry is then checked from headers and configs only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding, display_path
from doctor.core.probe import Probe, ProbeContext, ReadError, Rollout
from probes.common.paths import policy_for
from probes.common.yamlsafe import line_of
from probes.registry.rules import (
    BASE_DISAGREES,
    DUPLICATE,
    MALFORMED,
    MISSING_ON_DISK,
    NO_ROLLBACK,
    NOT_REGISTERED,
    NOT_SERVED,
    ROLLBACK_MISSING,
    RULES,
    SHA_MISMATCH,
    TOO_MANY,
    TWO_ACTIVE,
)
from probes.registry.store import WEIGHTS, Registry, load, validate
from probes.common.adapterinfo import info_key, read_adapter_info, remember, sha256_file

_LOADED: dict[str, tuple[tuple[int, int], Registry]] = {}


def load_cached(path: Path) -> Registry:
    """store.load, remembered per (size, mtime) so the probes of one scan parse a registry once."""
    st = path.stat()
    key, stamp_ = str(path.resolve()), (st.st_size, st.st_mtime_ns)
    hit = _LOADED.get(key)
    if hit is not None and hit[0] == stamp_:
        return hit[1]
    reg = load(path)
    if len(_LOADED) > 64:
        _LOADED.clear()
    _LOADED[key] = (stamp_, reg)
    return reg


def rollout_registries(rollout: Rollout) -> list[tuple[Artifact | None, Registry]]:
    """Registries of a rollout: discovered registry artifacts, plus the manifest's [serving] registry."""
    out: list[tuple[Artifact | None, Registry]] = []
    seen: set[Path] = set()
    for a in rollout.of_kind("registry"):
        try:
            reg = load_cached(a.path)
        except (ReadError, OSError):
            continue
        out.append((a, reg))
        seen.add(a.path.resolve())
    rel = ((rollout.manifest or {}).get("serving") or {}).get("registry")
    if isinstance(rel, str) and rel:
        p = (rollout.root / rel).resolve()
        if p not in seen and p.is_file():
            try:
                out.append((None, load_cached(p)))
            except (ReadError, OSError):
                pass
    return out


def entry_disk(folder: str, want_sha: bool) -> dict[str, Any]:
    """Disk facts of one registry entry (runs in worker processes for large registries)."""
    f = Path(folder)
    out: dict[str, Any] = {"folder": folder, "exists": f.is_dir(), "weights": (f / WEIGHTS).is_file()}
    if out["exists"]:
        out["key"] = info_key(f)  # the parent's memo key, computed here (resolve() is not free)
        out["info"] = read_adapter_info(f)
    if want_sha and out["weights"]:
        out["sha256"] = sha256_file(f / WEIGHTS)
    return out


def _batch(items: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    return [entry_disk(f, s) for f, s in items]


def disk_facts(
    folders: list[str], want_sha: bool, workers: int, parallel_min: int, ctx: ProbeContext
) -> dict[str, dict[str, Any]]:
    """folder → entry_disk(); a process pool of `workers` when there are ≥ parallel_min folders."""
    uniq = list(dict.fromkeys(folders))
    items = [(f, want_sha) for f in uniq]
    if workers > 1 and len(items) >= parallel_min:
        n = max(1, min(workers, len(items)))
        size = max(1, -(-len(items) // (n * 4)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results: list[dict[str, Any]] = []
        with ProcessPoolExecutor(max_workers=n) as pool:
            for part in pool.map(_batch, chunks):
                results.extend(part)
    else:
        results = _batch(items)
    out = {}
    for r in results:
        out[r["folder"]] = r
        if r.get("info") is not None:
            remember(ctx, r["key"], r["info"])
    return out


class RegistryProbe(Probe):
    name = "registry"
    kinds = frozenset({"registry"})
    rules = RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        reg = load_cached(artifact.path)
        path, text = artifact.path, reg.text
        findings: list[Finding] = []
        problems = validate(reg)
        bad_idx = {p["index"] for p in problems if p["field"] in ("name", "version", "path", None)}
        for p in problems:
            loc = f"adapters[{p['index']}]" if p["index"] is not None else p["field"]
            findings.append(
                MALFORMED.finding(
                    path,
                    p["message"],
                    locator=f"{loc}.{p['field']}" if p["field"] else loc,
                    evidence=p,
                    line=_line(text, p.get("name")),
                )
            )
        entries = [(i, e) for i, e in enumerate(reg.entries) if isinstance(e, dict) and i not in bad_idx]
        # duplicates and two active
        seen: dict[tuple[str, int], int] = {}
        active: dict[str, list[int]] = {}
        for i, e in entries:
            key = (e["name"], e["version"])
            if key in seen:
                findings.append(
                    DUPLICATE.finding(
                        path,
                        f"{e['name']} v{e['version']} registered twice (adapters[{seen[key]}] and adapters[{i}])",
                        locator=f"{e['name']} v{e['version']}",
                        evidence={"indices": [seen[key], i]},
                        line=_line(text, e["name"]),
                    )
                )
            seen.setdefault(key, i)
            if e.get("status") == "active":
                active.setdefault(e["name"], []).append(e["version"])
        for name, versions in active.items():
            if len(versions) > 1:
                findings.append(
                    TWO_ACTIVE.finding(
                        path,
                        f"{name}: versions {sorted(versions)} are all active",
                        locator=name,
                        evidence={"versions": sorted(versions)},
                        line=_line(text, name),
                    )
                )
        # disk work (parallel for large registries)
        want_sha = SHA_MISMATCH.id not in ctx.settings.disable
        folders = {i: reg.entry_path(e) for i, e in entries}
        policy = policy_for(ctx)  # the one path policy (probes/common/paths.py): entries outside are not read
        for i, e in entries:
            if folders[i] is not None and not policy.allows(folders[i]):
                where = f"{e['name']} v{e['version']}"
                findings.append(
                    policy.finding(path, folders[i], f"{where} path", locator=where, line=_line(text, e["name"]))
                )
                folders[i] = None
        workers = int(ctx.param(MISSING_ON_DISK, "workers")) or (os.cpu_count() or 1)
        disk = disk_facts(
            [str(p) for p in folders.values() if p is not None],
            want_sha,
            workers,
            int(ctx.param(MISSING_ON_DISK, "parallel_min")),
            ctx,
        )
        for i, e in entries:
            p = folders[i]
            d = disk.get(str(p)) if p is not None else None
            loc = f"{e['name']} v{e['version']}"
            ln = _line(text, e["name"])
            if d is None:
                continue
            if not d["weights"]:
                if e.get("status") in ("canary", "active", None):
                    findings.append(
                        MISSING_ON_DISK.finding(
                            path,
                            f"{loc} ({e.get('status') or 'no status'}): no {WEIGHTS} at {display_path(p)}",
                            locator=loc,
                            evidence={"path": e["path"]},
                            line=ln,
                        )
                    )
                continue
            sha = e.get("sha256")
            if want_sha and isinstance(sha, str) and d.get("sha256") and d["sha256"] != sha.lower():
                findings.append(
                    SHA_MISMATCH.finding(
                        path,
                        f"{loc}: {display_path(p / WEIGHTS)} hashes to {d['sha256'][:12]}…, registry says {sha[:12]}…",
                        locator=loc,
                        evidence={"file": str(p / WEIGHTS), "registry": sha, "actual": d["sha256"]},
                        line=_line(text, sha, e["name"]),
                    )
                )
            declared = d["info"].base_model_name_or_path if d.get("info") is not None else None
            if e.get("base_model") and declared and declared != e["base_model"]:
                findings.append(
                    BASE_DISAGREES.finding(
                        path,
                        f"{loc}: registry base_model {e['base_model']!r} ≠ adapter_config "
                        f"base_model_name_or_path {declared!r}",
                        locator=loc,
                        evidence={"registry": e["base_model"], "adapter": declared},
                        line=ln,
                    )
                )
        # rollback
        for _, e in entries:
            loc = f"{e['name']} v{e['version']}"
            rb = e.get("rollback_to")
            if rb is None:
                if e.get("status") == "active" and e["version"] > 1:
                    findings.append(
                        NO_ROLLBACK.finding(
                            path, f"{loc} is active with rollback_to = null", locator=loc, line=_line(text, e["name"])
                        )
                    )
                continue
            if not isinstance(rb, int):
                continue
            target = reg.get(e["name"], rb)
            if target is None:
                findings.append(
                    ROLLBACK_MISSING.finding(
                        path,
                        f"{loc}: rollback_to v{rb} is not in the registry",
                        locator=loc,
                        evidence={"rollback_to": rb},
                        line=_line(text, e["name"]),
                    )
                )
                continue
            tp = reg.entry_path(target)
            if tp is not None and not policy.allows(tp):
                continue  # said above (DOC010) when that entry was checked
            if tp is None or not (tp / WEIGHTS).is_file():
                findings.append(
                    ROLLBACK_MISSING.finding(
                        path,
                        f"{loc}: rollback_to v{rb} has no {WEIGHTS} at {tp}",
                        locator=loc,
                        evidence={"rollback_to": rb, "path": str(tp)},
                        line=_line(text, e["name"]),
                    )
                )
        artifact.facts.update(
            {
                "schema": reg.data.get("schema"),
                "adapters": len(reg.entries),
                "names": reg.names()[:100],
                "active": {n: max(v) for n, v in active.items()},
                # What other families need of a canary (eval_slices' canary rules), as plain facts.
                "canaries": [
                    {k: e.get(k) for k in ("name", "version", "canary_plan", "rollback_to")}
                    for e in reg.entries
                    if isinstance(e, dict) and e.get("status") == "canary" and e.get("canary_plan")
                ],
            }
        )
        return findings

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        from probes.serving.probe import resolve_target, rollout_servers

        registries = rollout_registries(rollout)
        servers = rollout_servers(rollout)
        findings: list[Finding] = []
        routed: set[str] = set()
        hashed: dict[Path, str] = {}
        want_sha = SHA_MISMATCH.id not in ctx.settings.disable
        for artifact, server in servers:
            names = list(dict.fromkeys(server.routes))
            routed.update(names)
            if isinstance(server.max_loras, int) and len(names) > server.max_loras:
                findings.append(
                    TOO_MANY.finding(
                        artifact.path,
                        f"{server.name}: {len(names)} adapters routed ({', '.join(names[:5])}) "
                        f"but max-loras {server.max_loras}",
                        locator=f"{server.name}: max-loras",
                        evidence={"routed": len(names), "max_loras": server.max_loras},
                        line=server.line,
                    )
                )
            if not registries:
                continue
            for ref in server.adapters:
                entries = [(reg, e) for reg in (r for _, r in registries) for e in reg.versions(ref.name)]
                if not entries:
                    findings.append(
                        NOT_REGISTERED.finding(
                            artifact.path,
                            f"{server.name}: adapter {ref.name!r} is routed but not in the registry",
                            locator=f"{server.name}: {ref.name}",
                            evidence={"name": ref.name},
                            line=ref.line,
                        )
                    )
                    continue
                res = resolve_target(ref.target, server, rollout, ctx, artifact.path.parent)
                if res.status != "ok" or res.path is None or not want_sha:
                    continue
                weights = res.path / WEIGHTS
                if not weights.is_file():
                    continue
                same = [
                    e
                    for reg, e in entries
                    if (p := reg.entry_path(e)) is not None and p.resolve() == res.path.resolve()
                ]
                if same:
                    continue  # the registry check already compared this file with its entry
                live = [e for _, e in entries if e.get("status") in ("active", "canary")] or [e for _, e in entries]
                expected = {str(e.get("sha256")).lower() for e in live if isinstance(e.get("sha256"), str)}
                if not expected:
                    continue
                key = weights.resolve()
                if key not in hashed:
                    hashed[key] = sha256_file(weights)
                if hashed[key] not in expected:
                    vs = ", ".join(f"v{e.get('version')}" for e in live)
                    findings.append(
                        SHA_MISMATCH.finding(
                            artifact.path,
                            f"{server.name}: served {ref.name} ({ref.target}) hashes to {hashed[key][:12]}…, "
                            f"matching no registered version ({vs})",
                            locator=f"{server.name}: {ref.name}",
                            evidence={"file": str(weights), "actual": hashed[key], "registry": sorted(expected)},
                            line=ref.line,
                        )
                    )
        if servers:
            for art, reg in registries:
                for e in reg.entries:
                    if (
                        isinstance(e, dict)
                        and e.get("status") in ("canary", "active")
                        and isinstance(e.get("name"), str)
                        and e["name"] not in routed
                    ):
                        findings.append(
                            NOT_SERVED.finding(
                                art.path if art else reg.path,
                                f"{e['name']} v{e.get('version')} is {e['status']} but no serving config routes it",
                                locator=f"{e['name']} v{e.get('version')}",
                                evidence={"name": e["name"]},
                                line=_line(reg.text, e["name"]),
                            )
                        )
        return findings


_NAME_LINES: dict[int, tuple[str, dict[str, int]]] = {}


def _line(text: str, *needles: Any) -> int:
    """Line of an entry's `name:` (an index built once per registry text), else of the first needle."""
    cached = _NAME_LINES.get(id(text))
    if cached is None or cached[0] is not text:
        index: dict[str, int] = {}
        for n, raw in enumerate(text.splitlines(), 1):
            key, sep, value = raw.strip().lstrip("- ").partition(":")
            if sep and key.strip() == "name":
                index.setdefault(value.strip().strip("'\""), n)
        _NAME_LINES.clear()
        _NAME_LINES[id(text)] = cached = (text, index)
    for n in needles:
        if isinstance(n, str) and n in cached[1]:
            return cached[1][n]
    return line_of(text, *[n for n in needles if isinstance(n, str)])


PROBES = [RegistryProbe()]
