"""REG checks on one registry file (artifact scope): its format, its versions, its entries on disk."""

from __future__ import annotations

from collections.abc import Iterator

from doctor.core.model import Finding, display_path
from doctor.core.probe import ProbeContext
from probes.registry.rules import (
    BASE_DISAGREES,
    CHECKS,
    DUPLICATE,
    MALFORMED,
    MISSING_ON_DISK,
    NO_ROLLBACK,
    ROLLBACK_MISSING,
    TWO_ACTIVE,
)
from probes.registry.store import WEIGHTS
from probes.registry.subject import RegistryFile, where


@CHECKS(MALFORMED, scope="artifact")
def malformed(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for p in f.problems:
        loc = f"adapters[{p['index']}]" if p["index"] is not None else p["field"]
        yield MALFORMED.finding(
            f.path,
            p["message"],
            locator=f"{loc}.{p['field']}" if p["field"] else loc,
            evidence=p,
            line=f.line(p.get("name")),
        )


@CHECKS(DUPLICATE, scope="artifact")
def duplicate(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    seen: dict[tuple[str, int], int] = {}
    for i, e in f.entries:
        key = (e["name"], e["version"])
        if key in seen:
            yield DUPLICATE.finding(
                f.path,
                f"{e['name']} v{e['version']} registered twice (adapters[{seen[key]}] and adapters[{i}])",
                locator=where(e),
                evidence={"indices": [seen[key], i]},
                line=f.line(e["name"]),
            )
        seen.setdefault(key, i)


@CHECKS(TWO_ACTIVE, scope="artifact")
def two_active(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for name, versions in f.active.items():
        if len(versions) > 1:
            yield TWO_ACTIVE.finding(
                f.path,
                f"{name}: versions {sorted(versions)} are all active",
                locator=name,
                evidence={"versions": sorted(versions)},
                line=f.line(name),
            )


@CHECKS(MISSING_ON_DISK, scope="artifact")
def missing_on_disk(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for i, e in f.entries:
        found = f.on_disk(i)
        if found is None or found[1].weights or e.get("status") not in ("canary", "active", None):
            continue
        yield MISSING_ON_DISK.finding(
            f.path,
            f"{where(e)} ({e.get('status') or 'no status'}): no {WEIGHTS} at {display_path(found[0])}",
            locator=where(e),
            evidence={"path": e["path"]},
            line=f.line(e["name"]),
        )


@CHECKS(BASE_DISAGREES, scope="artifact")
def base_disagrees(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for i, e in f.entries:
        found = f.on_disk(i)
        if found is None or not found[1].weights:
            continue  # nothing to compare with (REG007 says so for a live entry)
        info = found[1].info
        declared = info.base_model_name_or_path if info is not None else None
        if e.get("base_model") and declared and declared != e["base_model"]:
            yield BASE_DISAGREES.finding(
                f.path,
                f"{where(e)}: registry base_model {e['base_model']!r} ≠ adapter_config "
                f"base_model_name_or_path {declared!r}",
                locator=where(e),
                evidence={"registry": e["base_model"], "adapter": declared},
                line=f.line(e["name"]),
            )


@CHECKS(NO_ROLLBACK, scope="artifact")
def no_rollback(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for _, e in f.entries:
        if e.get("rollback_to") is None and e.get("status") == "active" and e["version"] > 1:
            yield NO_ROLLBACK.finding(
                f.path, f"{where(e)} is active with rollback_to = null", locator=where(e), line=f.line(e["name"])
            )


@CHECKS(ROLLBACK_MISSING, scope="artifact")
def rollback_missing(f: RegistryFile, ctx: ProbeContext) -> Iterator[Finding]:
    for _, e in f.entries:
        rb = e.get("rollback_to")
        if rb is None or not isinstance(rb, int):
            continue
        loc = where(e)
        target = f.reg.get(e["name"], rb)
        if target is None:
            yield ROLLBACK_MISSING.finding(
                f.path,
                f"{loc}: rollback_to v{rb} is not in the registry",
                locator=loc,
                evidence={"rollback_to": rb},
                line=f.line(e["name"]),
            )
            continue
        tp = f.reg.entry_path(target)
        if tp is not None and not f.policy.allows(tp):
            continue  # said (DOC010) when that entry was read
        if tp is None or not (tp / WEIGHTS).is_file():
            yield ROLLBACK_MISSING.finding(
                f.path,
                f"{loc}: rollback_to v{rb} has no {WEIGHTS} at {tp}",
                locator=loc,
                evidence={"rollback_to": rb, "path": str(tp)},
                line=f.line(e["name"]),
            )
