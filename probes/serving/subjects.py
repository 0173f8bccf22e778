"""What the serving checks look at, prepared once per config and once per rollout.

- `ConfigSubject` (artifact scope): one parsed serving config, its servers with their `--config` YAML merged
  in, and what the readers met as `Note`s of a kind (an unresolved variable, a path outside the rollout, …);
  each rule's check turns the notes of its kind into its findings.
- `ServingRollout` (rollout scope): every server of the rollout with the base model it serves and each
  adapter route resolved (`Routed`); the routes found on disk as `Pair`s (adapter × server × base), which
  the per-adapter checks and the compatibility matrix share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.core.model import Artifact, Finding
from doctor.core.probe import ProbeContext, ReadError, Rollout
from doctor.core.rules import Rule
from probes.common.adapterinfo import WEIGHT_NAMES, AdapterInfo, adapter_info
from probes.common.paths import within
from probes.common.targets import Resolved, resolve_target
from probes.serving import engines
from probes.serving.basemodel import read_base_config
from probes.serving.readers import apply_config_file, parse_config
from probes.serving.server import AdapterRef, ParsedConfig, Server

if TYPE_CHECKING:
    from probes.serving.tokenizer import Lineage


def serving_env(ctx: ProbeContext) -> dict[str, str]:
    env = ctx.section("serving").get("env") or {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


# ------------------------------------------------------------------ artifact scope: one config


# The kinds of what a reader or the preparation met; every other reader problem kind is "unparseable".
NOTE_KINDS = frozenset({"unparseable", "unresolved_var", "invalid_adapter_spec", "outside", "cannot_follow"})


@dataclass(frozen=True)
class Note:
    """Something met while a subject was prepared, for the check of its kind to report (a finding's parts)."""

    kind: str
    path: Path
    message: str
    locator: str
    line: int = 1
    evidence: dict[str, Any] = field(default_factory=dict)

    def finding(self, rule: Rule) -> Finding:
        return rule.finding(self.path, self.message, locator=self.locator, evidence=self.evidence, line=self.line)


def _note(p: dict[str, Any], path: Path, message: str, locator: str) -> Note:
    kind = p["kind"] if p["kind"] in NOTE_KINDS else "unparseable"
    return Note(kind, path, message, locator, p["line"], dict(p))


@dataclass
class ConfigSubject:
    artifact: Artifact
    parsed: ParsedConfig
    servers: list[Server]  # with their --config YAML merged in
    # The reader's problems and the --config notes, in the order they were met.
    notes: list[Note] = field(default_factory=list)

    def noted(self, kind: str, rule: Rule) -> list[Finding]:
        """`rule`'s findings for the notes of `kind` (called by that rule's check only)."""
        return [n.finding(rule) for n in self.notes if n.kind == kind]

    def facts(self) -> dict[str, Any]:
        pc = self.parsed
        return {
            "format": pc.format,
            "servers": [s.to_facts() for s in self.servers],
            "problems": pc.problems,
            **({"routes": [asdict(r) for r in pc.routes]} if pc.routes else {}),
        }


def read_config(artifact: Artifact, ctx: ProbeContext) -> ConfigSubject:
    """Parse the config (ReadError when the whole file is unreadable) and merge each server's --config."""
    env = serving_env(ctx)
    pc = parse_config(artifact.path, env, root=ctx.rollout.root)
    notes = [_note(p, artifact.path, p["message"], f"line {p['line']}") for p in pc.problems]
    servers = []
    for srv in pc.servers:
        if srv.config_file:
            srv = _with_config_file(srv, artifact, ctx, env, notes)
        servers.append(srv)
        loc = srv.name
        notes.extend(
            _note(p, artifact.path, f"{loc}: {p['message']}", f"{loc}: line {p['line']}") for p in srv.problems
        )
    return ConfigSubject(artifact, pc, servers, notes)


def _with_config_file(
    srv: Server, artifact: Artifact, ctx: ProbeContext, env: dict[str, str], notes: list[Note]
) -> Server:
    """The server with its `--config` YAML merged in, or as it is with a note why the file was not read."""
    assert srv.config_file is not None
    res = resolve_target(srv.config_file, srv, ctx.rollout, ctx, artifact.path.parent)
    path = res.path
    if res.status == "ok" and path is not None and not path.exists():
        alt = artifact.path.parent / srv.config_file
        path = alt if alt.exists() and within(alt, ctx.rollout.root) else path
    unusable = None  # (note kind, what is wrong with the --config file)
    if res.status == "outside":
        unusable = ("outside", f"--config {srv.config_file} is outside the rollout; not followed")
    elif path is None or not path.is_file():
        unusable = (
            ("cannot_follow", f"--config {srv.config_file} exists only in the container")
            if res.status == "container"
            else ("unparseable", f"--config file {srv.config_file} not found")
        )
    if unusable is not None:
        kind, what = unusable
        notes.append(Note(kind, artifact.path, f"{srv.name}: {what}", f"{srv.name}: config", srv.line))
        return srv
    try:
        return apply_config_file(srv, path, env)
    except ReadError as err:
        what = f"{srv.name}: --config {srv.config_file}: {err.reason} {err.where}".strip()
        notes.append(Note("unparseable", artifact.path, what, f"{srv.name}: config", srv.line))
        return srv


# ------------------------------------------------------------------ rollout scope: servers × bases × adapters


@dataclass
class Base:
    names: list[str]  # names the server answers to / the base is known by
    folder: Path | None = None
    config: dict[str, Any] | None = None
    # Why the base could not be followed ("outside", "cannot_follow"), for those rules' checks.
    notes: list[Note] = field(default_factory=list)
    # The rollout manifest's own base: probes/adapter already checks adapters against it (ADP012-014).
    is_manifest_base: bool = False
    manifest_name: str | None = None

    @property
    def arch(self) -> str | None:
        a = (self.config or {}).get("architectures")
        return a[0] if isinstance(a, list) and a and isinstance(a[0], str) else None

    @property
    def quant_method(self) -> str | None:
        q = (self.config or {}).get("quantization_config")
        if isinstance(q, dict):
            m = q.get("quant_method") or ("bitsandbytes" if q.get("load_in_4bit") or q.get("load_in_8bit") else None)
            return str(m) if m else None
        return None


def served_base(server: Server, rollout: Rollout, ctx: ProbeContext, cfg_path: Path) -> Base:
    manifest = (rollout.manifest or {}).get("rollout") or {}
    mname = manifest.get("base_model_name")
    mbase = manifest.get("base_model")
    mfolder = None
    if isinstance(mbase, str) and mbase:
        mfolder = (rollout.root / mbase).resolve() if not Path(mbase).is_absolute() else Path(mbase)
    model = server.model or ""
    base = Base(names=list(dict.fromkeys([*([model] if model else []), *server.served_names])))
    if not model:
        return base
    res = resolve_target(model, server, rollout, ctx, cfg_path.parent)
    if res.status == "ok" and res.path is not None and (res.path / "config.json").is_file():
        base.folder = res.path
    elif res.status == "outside":
        base.notes.append(
            Note(
                "outside",
                cfg_path,
                f"{server.name}: model {model!r} resolves to {res.path} outside the rollout {rollout.root}; "
                "not followed",
                f"{server.name}: model",
                server.line,
                {"path": model, "resolved": str(res.path)},
            )
        )
    elif res.status == "container":
        base.notes.append(
            Note(
                "cannot_follow",
                cfg_path,
                f"{server.name}: model {model!r} exists only inside the container; base checks skipped",
                f"{server.name}: model",
                server.line,
                {"path": model},
            )
        )
    if base.folder is None and mfolder is not None and mname and (model == mname or mname in server.served_names):
        base.folder = mfolder
    base.manifest_name = mname if isinstance(mname, str) else None
    if mname and (model == mname or mname in server.served_names):
        base.is_manifest_base = True
    if base.folder is not None:
        if mfolder is not None and base.folder.resolve() == mfolder.resolve():
            base.is_manifest_base = True
            if mname and mname not in base.names:
                base.names.append(mname)
        base.config = read_base_config(base.folder)
    return base


def adapter_missing(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"no adapter at {folder} ({'a file, not a folder' if folder.exists() else 'path does not exist'})"
    if any((folder / n).is_file() for n in WEIGHT_NAMES):
        return None
    others = sorted(p.name for p in folder.glob("*.safetensors"))[:3]
    subs = sorted(p.parent.name for p in folder.glob("*/adapter_model.safetensors"))[:3]
    hint = f"; found {others}" if others else f"; adapters in subfolders {subs}" if subs else ""
    return f"no adapter_model.safetensors/.bin/.pt in {folder} (vLLM: 'No adapter found'){hint}"


def server_from_facts(d: dict[str, Any]) -> Server:
    d = dict(d)
    d.pop("routes", None)
    adapters = [AdapterRef(**a) for a in d.pop("adapters", [])]
    vols = [tuple(v) for v in d.pop("volumes", [])]
    s = Server(**d)
    s.adapters = adapters
    s.volumes = vols  # type: ignore[assignment]
    return s


def rollout_servers(rollout: Rollout) -> list[tuple[Artifact, Server]]:
    out = []
    for a in rollout.of_kind("serving_config"):
        for d in a.facts.get("servers", []):
            out.append((a, server_from_facts(d)))
    return out


@dataclass
class Pair:
    """One adapter on one server, found on disk: what the per-adapter rules look at."""

    artifact: Artifact  # the serving config
    server: Server
    ref: AdapterRef | None  # None: a registry version the server does not route (matrix rows only)
    info: AdapterInfo
    base: Base
    folder: Path
    # Leave out adapter-vs-base checks probes/adapter already makes against the same base (the rollout
    # manifest's), so one problem is reported once; the matrix asks for the full list.
    own_only: bool = False

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else self.info.path

    @property
    def label(self) -> str:
        return engines.version_label(self.server.engine, self.server.version)

    @property
    def vs_base(self) -> bool:
        return not (self.own_only and self.base.is_manifest_base)

    def finding(self, rule: Rule, message: str, evidence: dict[str, Any]) -> Finding:
        return rule.finding(
            self.artifact.path,
            message,
            locator=f"{self.server.name}: {self.name}",
            evidence={"adapter": self.name, **evidence},
            line=self.ref.line if self.ref else self.server.line,
        )


@dataclass
class Routed:
    """One adapter route of a server, resolved: `pair` when the adapter is on disk."""

    ref: AdapterRef
    res: Resolved
    missing: str | None = None  # why nothing loadable is at the resolved path
    pair: Pair | None = None


@dataclass
class Served:
    artifact: Artifact
    server: Server
    base: Base
    routes: list[Routed] = field(default_factory=list)


@dataclass
class Pairs:
    """Adapter × server pairs alone: the subject the compatibility matrix runs the COMPAT checks on."""

    pairs: list[Pair]


@dataclass
class ServingRollout:
    rollout: Rollout
    served: list[Served]
    pairs: list[Pair]  # the routes found on disk (own_only), in server and route order
    # pair id → tokenizer lineage (or None), computed once for the four tokenizer rules
    lineages: dict[int, Lineage | None] = field(default_factory=dict)

    @cached_property
    def routers(self) -> list[Artifact]:
        """Routing-layer configs (LiteLLM) of the rollout."""
        return [a for a in self.rollout.of_kind("serving_config") if a.facts.get("routes")]

    @cached_property
    def served_models(self) -> tuple[set[str], set[str]]:
        """(base model names, adapter route names) the rollout's servers answer to."""
        servers = [s.server for s in self.served]
        bases = {n for s in servers for n in [*([s.model] if s.model else []), *s.served_names]}
        return bases, {r for s in servers for r in s.routes}


def prepare_rollout(rollout: Rollout, ctx: ProbeContext) -> ServingRollout:
    """Resolve each server's base model and adapter routes; read the adapters found (AdapterInfo, memoized)."""
    served: list[Served] = []
    pairs: list[Pair] = []
    for artifact, server in rollout_servers(rollout):
        s = Served(artifact, server, served_base(server, rollout, ctx, artifact.path))
        for ref in server.adapters:
            res = resolve_target(ref.target, server, rollout, ctx, artifact.path.parent)
            routed = Routed(ref, res)
            if res.status == "ok" and res.path is not None:
                routed.missing = adapter_missing(res.path)
                if routed.missing is None:
                    info = adapter_info(res.path, ctx)
                    routed.pair = Pair(artifact, server, ref, info, s.base, res.path, own_only=True)
                    pairs.append(routed.pair)
            s.routes.append(routed)
        served.append(s)
    return ServingRollout(rollout, served, pairs)
