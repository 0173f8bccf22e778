"""Per-entry disk facts of a registry: folder present, adapter_config.json + safetensors header, sha256.

For a large registry the reads run in a process pool (REG007 params: `parallel_min` entries or more,
`workers` processes, 0 = all cores). What a worker returns is plain picklable data; the parent hands the
adapter reads to the scan's memo (probes/common/adapterinfo.py), so the serving probe's compatibility
pass over every registered version does not read the same headers again.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from probes.common.adapterinfo import AdapterInfo, info_key, read_adapter_info, sha256_file
from probes.registry.store import WEIGHTS


@dataclass(frozen=True)
class EntryDisk:
    folder: str
    exists: bool  # the entry's folder is a directory
    weights: bool  # it holds adapter_model.safetensors
    info: AdapterInfo | None = None  # header + config read (None when the folder is missing)
    key: tuple | None = None  # adapterinfo.info_key(folder), computed in the worker (resolve() is not free)
    sha256: str | None = None  # of the weights, when asked for and present


def entry_disk(folder: str, want_sha: bool) -> EntryDisk:
    """Disk facts of one registry entry (runs in worker processes for large registries)."""
    f = Path(folder)
    exists, weights = f.is_dir(), (f / WEIGHTS).is_file()
    key = info_key(f) if exists else None
    info = read_adapter_info(f) if exists else None
    sha = sha256_file(f / WEIGHTS) if want_sha and weights else None
    return EntryDisk(folder, exists, weights, info, key, sha)


def _batch(items: list[tuple[str, bool]]) -> list[EntryDisk]:
    return [entry_disk(f, s) for f, s in items]


def disk_facts(folders: list[str], want_sha: bool, workers: int, parallel_min: int) -> dict[str, EntryDisk]:
    """folder → entry_disk(); a process pool of `workers` when there are ≥ parallel_min folders."""
    items = [(f, want_sha) for f in dict.fromkeys(folders)]
    if workers > 1 and len(items) >= parallel_min:
        n = max(1, min(workers, len(items)))
        size = max(1, -(-len(items) // (n * 4)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results: list[EntryDisk] = []
        with ProcessPoolExecutor(max_workers=n) as pool:
            for part in pool.map(_batch, chunks):
                results.extend(part)
    else:
        results = _batch(items)
    return {r.folder: r for r in results}
