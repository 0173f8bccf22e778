"""A rollout's registries, each read once per scan (ctx.session.memo) with its name-line index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doctor.core.probe import ReadError, Rollout
from probes.registry.lines import NameLines
from probes.registry.store import Registry, load

if TYPE_CHECKING:
    from doctor.core.model import Artifact
    from doctor.core.probe import ProbeContext

MEMO_SPACE = "registry.load"


@dataclass(frozen=True)
class Loaded:
    reg: Registry
    line: NameLines  # line(entry name, …) → line number in registry.yaml


def _read(path: Path) -> Loaded:
    reg = load(path)
    return Loaded(reg, NameLines(reg.text))


def load_registry(path: Path, ctx: ProbeContext | None = None) -> Loaded:
    """store.load(path) and its line index, read once per scan (again if the file changes during it).
    Without a context (a caller outside a scan) the file is simply read."""
    st = path.stat()  # a file gone since discovery is an OSError, as before (the engine says DOC001)
    if ctx is None:
        return _read(path)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    return ctx.session.memo(MEMO_SPACE, key, lambda: _read(path))


def rollout_loaded(rollout: Rollout, ctx: ProbeContext | None = None) -> list[tuple[Artifact | None, Loaded]]:
    """Registries of a rollout: discovered registry artifacts, plus the manifest's [serving] registry.
    One that cannot be read is left out (its artifact check reported DOC001)."""
    out: list[tuple[Artifact | None, Loaded]] = []
    seen: set[Path] = set()
    for a in rollout.of_kind("registry"):
        try:
            out.append((a, load_registry(a.path, ctx)))
        except (ReadError, OSError):
            continue
        seen.add(a.path.resolve())
    rel = ((rollout.manifest or {}).get("serving") or {}).get("registry")
    if isinstance(rel, str) and rel:
        p = (rollout.root / rel).resolve()
        if p not in seen and p.is_file():
            try:
                out.append((None, load_registry(p, ctx)))
            except (ReadError, OSError):
                pass
    return out


def rollout_registries(rollout: Rollout, ctx: ProbeContext | None = None) -> list[tuple[Artifact | None, Registry]]:
    """As rollout_loaded, the Registry objects only (for the compatibility matrix)."""
    return [(a, loaded.reg) for a, loaded in rollout_loaded(rollout, ctx)]
