"""Find the artifacts under a target: the walk, rollout manifests and the rollout each artifact belongs to.

What a file *is* is not decided here: each probe family owns its formats (probes/<family>/formats.py) and
exports `CLASSIFIERS`; the engine passes them in (`probes.classifiers()`) and discovery asks them in the
order given, first answer wins. A classifier looks at a name and a peek (`FilePeek`, `FolderPeek`: the
first bytes of a file, read once however many classifiers look), never a full parse.

Core keeps what is not a family's: the walk (SKIP_DIRS, checkpoint-N run folders), the rollout manifest
(`rollout.toml`, which every family reads and which decides the rollouts), the kinds a manifest declares,
and rollout assignment. Each artifact belongs to a rollout: the nearest folder at or above it (within the
target) that holds a `rollout.toml` manifest, else the target itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Final

from doctor.core.model import Artifact
from doctor.core.safeio import loads_json

MANIFEST_NAME = "rollout.toml"
SKIP_DIRS = {".git", ".doctor", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache", ".ruff_cache"}
_CHECKPOINT = re.compile(r"^checkpoint-\d+$")
PEEK_BYTES = 16384
_RUN_ARGS = ("training_args.json", "training_args.bin")
_RUN_FILES = {"trainer_state.json", *_RUN_ARGS}


# --- what classifiers see ---------------------------------------------------------------------------------------
class FilePeek:
    """The first PEEK_BYTES of one file, read on first use and kept, so a file is read once however many
    classifiers look. An unreadable file peeks as empty text."""

    __slots__ = ("_columns", "_raw", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._columns: set[str] | None = None

    def text(self, size: int = PEEK_BYTES) -> str:
        """The first `size` bytes (at most PEEK_BYTES), decoded leniently."""
        if self._raw is None:
            try:
                with self.path.open("rb") as fh:
                    self._raw = fh.read(PEEK_BYTES)
            except OSError:
                self._raw = b""
        return self._raw[:size].decode("utf-8", errors="replace")

    @property
    def first_line(self) -> str:
        return self.text(4096).split("\n", 1)[0].strip()

    @property
    def columns(self) -> set[str]:
        """Column names (lowercased) of a CSV/TSV header, the first JSONL object or a Parquet schema."""
        if self._columns is None:
            self._columns = (
                _parquet_columns(self.path) if self.path.name.lower().endswith(".parquet") else self._table_columns()
            )
        return self._columns

    def _table_columns(self) -> set[str]:
        line = self.first_line
        if self.path.suffix in (".csv", ".tsv"):
            sep = "\t" if self.path.suffix == ".tsv" else ","
            return {c.strip().strip('"').lower() for c in line.split(sep)}
        try:
            obj = loads_json(line)
        except ValueError:
            return set()
        return {str(k).lower() for k in obj} if isinstance(obj, dict) else set()


def _parquet_columns(path: Path) -> set[str]:
    try:
        import pyarrow.parquet as pq  # only when a parquet file is actually present

        return {n.lower() for n in pq.read_schema(path).names}
    except Exception:
        return set()


@dataclass(frozen=True)
class FolderPeek:
    """A folder's entry names (listed once, before any classifier is asked)."""

    path: Path
    names: frozenset[str]


@dataclass(frozen=True)
class PartOf:
    """A file that is no artifact by itself but part of its folder, an artifact of `kind` (adapter_config.json
    stands for its adapter folder when it is the whole target)."""

    kind: str


class _NotAnArtifact:
    def __repr__(self) -> str:
        return "NOT_AN_ARTIFACT"


# A file a classifier recognises as its format's and that holds nothing to check (a Dockerfile that starts no
# engine): no later classifier is asked.
NOT_AN_ARTIFACT: Final = _NotAnArtifact()

Verdict = str | PartOf | _NotAnArtifact | None
FileClassifier = Callable[[Path, FilePeek], Verdict]
FolderClassifier = Callable[[Path, FolderPeek], str | None]


class Evidence(IntEnum):
    """How strong a classifier's evidence is. `probes.classifiers()` asks the strongest first (stable within
    a strength, in family order), which reproduces the precedence between families: a trainer_log.jsonl is a
    training log whatever its columns, a registry YAML with engine words is a registry, a CSV with eval
    columns and loss/step columns is an eval table. Classifiers of one strength must not claim the same file."""

    NAME = 0  # the name says what it is (trainer_state.json, adapter_config.json, a Dockerfile, a .sh script)
    MARKER = 1  # an explicit marker in the content ("peft-doctor/registry")
    SIGNATURE = 2  # a format's distinctive content (engine words, eval columns, a model folder's config.json)
    HINT = 3  # generic names or keys other formats share (learning_rate:, loss + step columns, mlruns/)


@dataclass(frozen=True)
class Classifier:
    """One family's file and/or folder signatures at one strength. A file classifier returns an artifact
    kind, PartOf(kind), NOT_AN_ARTIFACT, or None (not mine: ask the next); a folder classifier a kind or None.
    A folder that gets a kind other than "adapter" is read as one unit (not walked into)."""

    strength: Evidence
    file: FileClassifier | None = None
    folder: FolderClassifier | None = None


def by_strength(classifiers: Iterable[Classifier]) -> tuple[Classifier, ...]:
    """The order discovery asks in: strongest evidence first, the given order within a strength."""
    return tuple(sorted(classifiers, key=lambda c: c.strength))


def file_verdict(path: Path, classifiers: Sequence[Classifier]) -> Verdict:
    """The first answer of the file classifiers (the manifest is core's: rollout.toml is always one)."""
    if path.name == MANIFEST_NAME:
        return "manifest"
    peek = FilePeek(path)
    for c in classifiers:
        if c.file is not None and (verdict := c.file(path, peek)) is not None:
            return verdict
    return None


def classify_file(path: Path, classifiers: Sequence[Classifier]) -> str | None:
    """The artifact kind of one file found in a walk, or None."""
    verdict = file_verdict(path, classifiers)
    return verdict if isinstance(verdict, str) else None


def classify_dir(path: Path, classifiers: Sequence[Classifier]) -> str | None:
    """The artifact kind of a folder read as one unit (adapter, base model, MLflow/W&B run), or None."""
    try:
        peek = FolderPeek(path, frozenset(e.name for e in os.scandir(path)))
    except OSError:
        return None
    for c in classifiers:
        if c.folder is not None and (kind := c.folder(path, peek)) is not None:
            return kind
    return None


# --- the walk ---------------------------------------------------------------------------------------------------
def discover(target: Path, classifiers: Sequence[Classifier]) -> list[Artifact]:
    """All artifacts under target (a file or a folder), each with its rollout folder."""
    target = target.resolve() if target.exists() else target
    found: list[Artifact] = []
    if target.is_file():
        verdict = file_verdict(target, classifiers)
        kind = verdict if isinstance(verdict, str) else None
        manifest = _manifest_above(target.parent)
        if manifest and kind != "manifest":
            declared = {_resolved(p): k for p, k in declared_files(manifest)}
            kind = declared.get(target, kind)
        if kind is None and isinstance(verdict, PartOf):
            kind, target = verdict.kind, target.parent
        if kind:
            found.append(Artifact(target, kind))
        root = target.parent
    else:
        root = target
        found.extend(_walk(target, classifiers, top=True))
        _apply_declared_kinds(found, root)
    _assign_rollouts(found, root)
    return found


def _manifest_above(folder: Path) -> Path | None:
    """The nearest rollout.toml at or above `folder`."""
    for d in (folder, *folder.parents):
        if (d / MANIFEST_NAME).is_file():
            return d / MANIFEST_NAME
    return None


def declared_files(manifest: Path) -> list[tuple[Path, str]]:
    """(file, kind) for the files a rollout manifest names as eval tables, serving configs and registry.
    Empty when the manifest cannot be read (its own probe reports that)."""
    from doctor.core.manifest import read_manifest, resolve
    from doctor.core.probe import ReadError

    try:
        data = read_manifest(manifest)
    except (ReadError, ValueError, TypeError, OSError):  # bad bytes, wrong types: its own probe says what
        return []
    ev, srv = data.get("eval") or {}, data.get("serving") or {}
    if not isinstance(ev, dict) or not isinstance(srv, dict):
        return []

    def paths(value: object) -> list[str]:
        items = value if isinstance(value, list) else [value]
        return [v for v in items if isinstance(v, str) and v]

    named = [(v, "eval_table") for v in paths(ev.get("baseline")) + paths(ev.get("candidates"))]
    named += [(v, "serving_config") for v in paths(srv.get("configs"))]
    named += [(v, "registry") for v in paths(srv.get("registry"))]
    out = []
    for value, kind in named:
        p = resolve(manifest.parent, value)
        if p is not None and "\0" not in value:
            # Normalised, not resolved: a symlink is matched where it sits, as the folder walk sees it.
            out.append((Path(os.path.normpath(p)), kind))
    return out


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):
        return p


def _apply_declared_kinds(found: list[Artifact], root: Path) -> None:
    """A file the manifest names is read as what the manifest says it is, even when its content does not
    look the part: a damaged eval table or a serving config that breaks on line 1 must be reported, not
    skipped (a CI gate would pass on it). Only files under the target are added."""
    by_path = {a.path: a for a in found}
    manifests = {a.path for a in found if a.kind == "manifest"}
    above = _manifest_above(root)  # a target inside a rollout (e.g. its eval/ folder)
    if above is not None:
        manifests.add(above)
    for manifest in sorted(manifests):
        for path, kind in declared_files(manifest):
            try:
                if not path.is_file() or (root not in path.parents):
                    continue
            except OSError:  # a name the file system refuses (too long): the manifest's probe says so
                continue
            art = by_path.get(path)
            if art is None:
                art = Artifact(path, kind)
                found.append(art)
                by_path[path] = art
            elif art.kind not in (kind, "manifest"):  # a manifest listing itself stays a manifest
                art.kind = kind


def _walk(
    folder: Path, classifiers: Sequence[Classifier], top: bool = False, in_run: bool = False
) -> Iterator[Artifact]:
    kind = classify_dir(folder, classifiers)
    if kind is not None:
        yield Artifact(folder, kind)
        if kind != "adapter":
            return  # base models, mlruns and wandb runs are read as one unit
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    checkpoints = []
    for entry in entries:
        if entry.name in SKIP_DIRS or (entry.name.startswith(".") and entry.is_dir()):
            continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if _CHECKPOINT.match(entry.name):
                checkpoints.append(p)  # intermediate checkpoints: read through the run's log
                if not top:
                    continue
            if kind == "adapter":
                continue
            yield from _walk(p, classifiers, in_run=bool(_CHECKPOINT.match(entry.name)))
        elif entry.is_file() and (kind != "adapter" or entry.name in _RUN_FILES or entry.name == MANIFEST_NAME):
            # An adapter folder that is also a Trainer/TRL output (save_model into output_dir) keeps its run
            # files and its manifest (doctor init writes one there).
            if in_run and entry.name in _RUN_FILES:
                continue  # the parent run folder yields the newest checkpoint's state and arguments
            k = classify_file(p, classifiers)
            if k:
                yield Artifact(p, k)
    if checkpoints and (kind is None or (kind == "adapter" and top)):
        yield from _run_from_checkpoints(folder, checkpoints)


def _run_from_checkpoints(folder: Path, checkpoints: list[Path]) -> Iterator[Artifact]:
    """A plain HF Trainer / TRL output folder (checkpoint-N/ with trainer_state.json, training_args.bin,
    adapter files, no manifest): the newest checkpoint's state and arguments stand for the run where the
    folder has none of its own (Trainer writes them top-level only after save_state / save_model)."""
    newest = max(checkpoints, key=lambda p: int(p.name.split("-")[1]))
    own = folder == newest
    if (own or not (folder / "trainer_state.json").exists()) and (newest / "trainer_state.json").is_file():
        yield Artifact(newest / "trainer_state.json", "training_log")
    if not own and any((folder / n).exists() for n in _RUN_ARGS):
        return
    for name in _RUN_ARGS:
        if (newest / name).is_file():
            yield Artifact(newest / name, "training_config")
            return


def _assign_rollouts(artifacts: list[Artifact], root: Path) -> None:
    cache: dict[Path, Path] = {}

    def rollout_of(p: Path) -> Path:
        start = p if p.is_dir() else p.parent
        d = start
        chain = []
        while True:
            if d in cache:
                found = cache[d]
                break
            chain.append(d)
            if (d / MANIFEST_NAME).is_file():
                found = d
                break
            if d == root or d.parent == d or root not in d.parents:
                found = root
                break
            d = d.parent
        for c in chain:
            cache[c] = found
        return found

    for a in artifacts:
        a.rollout = rollout_of(a.path)
