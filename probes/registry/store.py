"""The adapter registry file (`registry.yaml`, docs/formats.md): read, validate, write atomically.

```python
from probes.registry.store import load, save, add_version, validate

reg = load(Path("registry.yaml"))          # Registry(path, data, entries); ReadError if unparseable
reg.entries                                  # list of dicts, in file order, unknown keys kept
reg.latest("support-bot"), reg.active("support-bot"), reg.get("support-bot", 2)
save(reg)                                    # temp file in the same folder + fsync + os.replace
entry = add_version(Path("registry.yaml"), {"name": "support-bot", "path": "adapters/v2"})
# → version = previous max + 1, rollback_to = the last version that passed the gate (see `passed_gate`;
#   never a rejected or known-broken one; null when none did), status = canary (default),
#   sha256 of <path>/adapter_model.safetensors when the file exists, created = now (UTC);
#   creates the file when it does not exist; serialized with an flock on registry.yaml.lock
#   (removed after each write).
```
Statuses: candidate (registered, not yet served) · canary (serving a share of traffic; at most one per
adapter name) · active · rejected (failed its gate: never served, never a rollback target) · retired.
A new canary retires the previous canary of its name (or rejects it when the caller knows it is broken).
Unknown top-level and per-entry keys survive a rewrite, and so do the user's comments, key order and
quoting: a rewrite of an existing file is a round trip through ruamel.yaml (`dump(data, original_text)`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from doctor.core.probe import ReadError
from probes.common.yamlsafe import load_yaml, load_yaml_text

SCHEMA = "peft-doctor/registry/1"
STATUSES = ("candidate", "canary", "active", "rejected", "retired")
QUANTIZATIONS = ("none", "nf4", "fp4", "int8")
METHODS = ("lora", "qlora")
REQUIRED = ("name", "version", "path")
WEIGHTS = "adapter_model.safetensors"


@dataclass
class Registry:
    path: Path
    data: dict[str, Any] = field(default_factory=lambda: {"schema": SCHEMA, "adapters": []})
    text: str = ""

    @property
    def entries(self) -> list[dict[str, Any]]:
        adapters = self.data.setdefault("adapters", [])
        return adapters if isinstance(adapters, list) else []

    @property
    def folder(self) -> Path:
        return self.path.parent

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if isinstance(e, dict) and e.get("name") == name]

    def get(self, name: str, version: Any) -> dict[str, Any] | None:
        return next((e for e in self.versions(name) if e.get("version") == version), None)

    def latest(self, name: str) -> dict[str, Any] | None:
        vs = [e for e in self.versions(name) if _is_int(e.get("version"))]
        return max(vs, key=lambda e: e["version"]) if vs else None

    def active(self, name: str) -> dict[str, Any] | None:
        act = [e for e in self.versions(name) if e.get("status") == "active" and _is_int(e.get("version"))]
        return max(act, key=lambda e: e["version"]) if act else None

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for e in self.entries:
            if isinstance(e, dict) and isinstance(e.get("name"), str):
                seen.setdefault(e["name"])
        return list(seen)

    def entry_path(self, entry: dict[str, Any]) -> Path | None:
        """An entry's adapter folder (relative paths are relative to the registry file's folder)."""
        p = entry.get("path")
        if not isinstance(p, str) or not p:
            return None
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.folder / q


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load(path: Path) -> Registry:
    docs, text = load_yaml(Path(path))
    data = docs[0] if docs else None
    if data is None:
        data = {"schema": SCHEMA, "adapters": []}
    if not isinstance(data, dict):
        raise ReadError(Path(path), "registry is not a YAML mapping")
    if data.get("adapters") is None:
        data["adapters"] = []
    if not isinstance(data["adapters"], list):
        raise ReadError(Path(path), "`adapters` must be a list", "adapters")
    return Registry(Path(path), data, text)


def validate(reg: Registry) -> list[dict[str, Any]]:
    """Format problems: [{"index", "name", "field", "message"}]. Empty when the registry is well-formed."""
    out: list[dict[str, Any]] = []
    schema = reg.data.get("schema")
    if schema not in (None, SCHEMA):
        out.append(
            {"index": None, "name": None, "field": "schema", "message": f"schema {schema!r}; expected {SCHEMA!r}"}
        )
    for i, e in enumerate(reg.entries):
        if not isinstance(e, dict):
            out.append({"index": i, "name": None, "field": None, "message": f"adapters[{i}] is not a mapping"})
            continue
        name = e.get("name")

        def bad(fld: str, msg: str, i: int = i, name: Any = name) -> None:
            out.append({"index": i, "name": name, "field": fld, "message": msg})

        for k in REQUIRED:
            if e.get(k) in (None, ""):
                bad(k, f"adapters[{i}] has no {k}")
        if "name" in e and not isinstance(name, str):
            bad("name", f"adapters[{i}].name = {name!r} is not a string")
        v = e.get("version")
        if v is not None and (not _is_int(v) or v < 1):
            bad("version", f"adapters[{i}].version = {v!r}; expected an integer ≥ 1")
        st = e.get("status")
        if st is not None and st not in STATUSES:
            bad("status", f"adapters[{i}].status = {st!r}; expected one of {', '.join(STATUSES)}")
        q = e.get("quantization")
        if q is not None and str(q) not in QUANTIZATIONS:
            bad("quantization", f"adapters[{i}].quantization = {q!r}; expected one of {', '.join(QUANTIZATIONS)}")
        m = e.get("method")
        if m is not None and m not in METHODS:
            bad("method", f"adapters[{i}].method = {m!r}; expected lora or qlora")
        rb = e.get("rollback_to")
        if rb is not None and not _is_int(rb):
            bad("rollback_to", f"adapters[{i}].rollback_to = {rb!r}; expected a version number or null")
        sha = e.get("sha256")
        if sha is not None and (
            not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())
        ):
            bad("sha256", f"adapters[{i}].sha256 is not a 64-hex-digit digest")
    return out


def dump(data: dict[str, Any], original: str = "", path: Path | None = None) -> str:
    """YAML text for `data`. Given the file's current text, a round trip: the changes are merged into
    the parsed original, so comments, key order and scalar styles the user wrote stay as they were.

    ruamel reads `original` a second time, so it first passes the same caps as load() (size, alias
    expansion): an alias bomb raises ReadError naming `path` instead of being expanded by the merge.
    """
    if original.strip():
        load_yaml_text(original, Path(path or "registry.yaml"))
        try:
            return _round_trip(data, original)
        except Exception:  # ruamel rejected what pyyaml read: a plain dump still saves the data
            pass
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _round_trip(data: dict[str, Any], original: str) -> str:
    import io

    from ruamel.yaml import YAML  # lazy: only when a registry is rewritten

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap the user's long lines
    rt.representer.add_representer(  # `rollback_to: null`, as the format documents it (ruamel writes nothing)
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    nested = re.search(r"^([ \t]+)- ", original, re.M)  # `adapters:\n  - name:` style
    if nested:
        offset = len(nested.group(1))
        rt.indent(mapping=2, sequence=offset + 2, offset=offset)
    tree = rt.load(original)
    if not isinstance(tree, dict):
        raise ValueError("not a mapping")
    _merge(tree, data)
    buf = io.StringIO()
    rt.dump(tree, buf)
    return buf.getvalue()


def _merge(node: Any, new: Any) -> Any:
    """`node` (ruamel's commented tree) changed in place to equal `new`; returns what to store."""
    if isinstance(node, dict) and isinstance(new, dict):
        for k in [k for k in node if k not in new]:
            del node[k]
        for k, v in new.items():
            node[k] = _merge(node[k], v) if k in node else v
        return node
    if isinstance(node, list) and isinstance(new, list):
        for i, v in enumerate(new):
            if i < len(node):
                node[i] = _merge(node[i], v)
            else:
                node.append(v)
        del node[len(new) :]
        return node
    # An unchanged scalar keeps its node (ruamel's str/int/float subclasses remember quotes and format).
    try:
        same = node == new and isinstance(node, type(new))
    except Exception:
        same = False
    return node if same else new


def save(reg: Registry, path: Path | None = None) -> Path:
    """Write atomically: a temp file in the target's folder, fsync, then os.replace over the target."""
    target = Path(path or reg.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dump(reg.data, reg.text if target == reg.path else "", target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    reg.path, reg.text = target, text
    return target


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive flock on `<registry>.lock`, removed again on the way out (no lock file is left behind).

    Removing it while holding the lock is safe because a locker checks, once it holds the lock, that the file
    it locked is still the one at the path (same inode); a waiter that locked a removed file retries.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    while True:
        fh = open(lock, "a")  # noqa: SIM115 - closed below on every path
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(lock))
            except FileNotFoundError:
                same = False
        except BaseException:
            fh.close()
            raise
        if same:
            break
        fh.close()  # the holder before us removed this file: lock the current one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        fh.close()  # closing releases the flock, after the file is gone


def passed_gate(entry: dict[str, Any]) -> bool:
    """A version that may be rolled back to: not rejected, not marked as failing its gate; `gate: passed`
    (written by doctor's jobs) or a status a person gave it after checking (active, retired)."""
    if entry.get("status") == "rejected" or entry.get("gate") == "failed":
        return False
    return entry.get("gate") == "passed" or entry.get("status") in ("active", "retired")


def last_passed(reg: Registry, name: str, below: int | None = None, exclude: set[int] | None = None) -> int | None:
    vs = [
        e["version"]
        for e in reg.versions(name)
        if _is_int(e.get("version"))
        and passed_gate(e)
        and (below is None or e["version"] < below)
        and e["version"] not in (exclude or set())
    ]
    return max(vs) if vs else None


def add_version(registry_path: Path, entry: dict[str, Any], *, known_broken: set[int] | None = None) -> dict[str, Any]:
    """Append a new adapter version and return the stored entry (see the module docstring).

    `known_broken`: versions the caller's re-probe found broken — never a rollback target, and rejected
    when a new canary replaces them.
    """
    registry_path = Path(registry_path)
    if not entry.get("name") or not entry.get("path"):
        raise ValueError("add_version needs at least name and path")
    broken = set(known_broken or ())
    with _locked(registry_path):
        reg = load(registry_path) if registry_path.exists() else Registry(registry_path)
        reg.data.setdefault("schema", SCHEMA)
        name = entry["name"]
        new = dict(entry)
        prev_latest = reg.latest(name)
        if new.get("version") is None:
            new["version"] = (prev_latest["version"] + 1) if prev_latest else 1
        if reg.get(name, new["version"]) is not None:
            raise ValueError(f"{name} version {new['version']} is already registered")
        if "rollback_to" not in new:
            new["rollback_to"] = last_passed(reg, name, below=new["version"], exclude=broken)
        new.setdefault("status", "canary")
        if new["status"] == "canary":
            for e in reg.versions(name):
                if e.get("status") == "canary":
                    e["status"] = "rejected" if e.get("version") in broken else "retired"
        if new.get("sha256") is None:
            folder = reg.entry_path(new)
            if folder is not None and (folder / WEIGHTS).is_file():
                new["sha256"] = sha256_of(folder / WEIGHTS)
        new.setdefault("created", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        reg.entries.append(new)
        problems = [p for p in validate(reg) if p["index"] == len(reg.entries) - 1]
        if problems:
            raise ValueError("; ".join(p["message"] for p in problems))
        save(reg)
        return new


def set_status(registry_path: Path, name: str, version: int, status: str) -> dict[str, Any]:
    """Change one version's status; promoting to `active` retires the previously active version(s), and a
    new `canary` retires the previous canary (one per name). A rejected version is never promoted."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r}; expected one of {', '.join(STATUSES)}")
    registry_path = Path(registry_path)
    with _locked(registry_path):
        reg = load(registry_path)
        target = reg.get(name, version)
        if target is None:
            raise KeyError(f"{name} version {version} is not registered")
        if status in ("active", "canary") and (target.get("status") == "rejected" or target.get("gate") == "failed"):
            raise ValueError(f"{name} version {version} is rejected (it failed its gate); it cannot be {status}")
        if status in ("active", "canary"):
            for e in reg.versions(name):
                if e is not target and e.get("status") == status:
                    e["status"] = "retired"
        target["status"] = status
        save(reg)
        return target
