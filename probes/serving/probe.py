"""The serving probe: per config (parse + config-only rules) and per rollout (config × adapter × base)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding
from doctor.core.probe import Probe, ProbeContext, ReadError, Rollout
from doctor.core.rules import Rule
from probes.common.adapterinfo import WEIGHT_NAMES, AdapterInfo, adapter_info
from probes.common.targets import resolve_target
from probes.serving import engines, features, noop
from probes.serving import rules as R
from probes.serving import tokenizer as tok
from probes.serving.artifacts import dim_mismatches, read_base_config
from probes.serving.readers import apply_config_file, parse_config
from probes.serving.server import AdapterRef, Server

Check = tuple[Rule, str, dict[str, Any]]


# ------------------------------------------------------------------ paths


def _within(p: Path, root: Path) -> bool:
    try:
        p.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------ base model


@dataclass
class Base:
    names: list[str]  # names the server answers to / the base is known by
    folder: Path | None = None
    config: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
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
        base.findings.append(
            R.OUTSIDE_ROOT.finding(
                cfg_path,
                f"{server.name}: model {model!r} resolves to {res.path} outside the rollout {rollout.root}; "
                "not followed",
                locator=f"{server.name}: model",
                evidence={"path": model, "resolved": str(res.path)},
                line=server.line,
            )
        )
    elif res.status == "container":
        base.findings.append(
            R.CANNOT_VERIFY.finding(
                cfg_path,
                f"{server.name}: model {model!r} exists only inside the container; base checks skipped",
                locator=f"{server.name}: model",
                evidence={"path": model},
                line=server.line,
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


# ------------------------------------------------------------------ checks


def _needed_rank_cap(rank: int, caps: frozenset[int]) -> int | None:
    ok = sorted(c for c in caps if c >= rank)
    return ok[0] if ok else None


def adapter_checks(
    server: Server,
    ref: AdapterRef | None,
    info: AdapterInfo,
    base: Base | None,
    adapter_root: Path | None = None,
    *,
    own_only: bool = False,
) -> list[Check]:
    """Everything statically checkable about serving this adapter on this server ([] = compatible).

    own_only: leave out adapter-vs-base checks that probes/adapter already makes against the same base
    (the rollout manifest's), so one problem is reported once; the matrix uses the full list.
    """
    out: list[Check] = []
    vs_base = base is not None and not (own_only and base.is_manifest_base)
    vllm = server.engine == "vllm"
    label = engines.version_label(server.engine, server.version)
    name = ref.name if ref else info.path
    cfg = info.config or {}
    # SRV014 missing fields
    non_lora = str(info.peft_type or "LORA").upper() != "LORA"  # SRV028 reports it once
    if not info.has_config:
        out.append((R.MISSING_FIELDS, f"{name}: no adapter_config.json in {info.path}", {}))
    elif not non_lora:
        missing = [k for k in ("r", "lora_alpha", "target_modules") if cfg.get(k) is None]
        r = cfg.get("r")
        if missing:
            out.append(
                (R.MISSING_FIELDS, f"{name}: adapter_config.json has no {', '.join(missing)}", {"missing": missing})
            )
        elif not isinstance(r, int) or isinstance(r, bool) or r <= 0:
            out.append((R.MISSING_FIELDS, f"{name}: r = {r!r}; must be an integer > 0", {"r": r}))
    # SRV003 rank above cap
    rank = info.max_rank
    capped = vllm or server.engine == "sglang"  # SGLang sizes its LoRA buffers by --max-lora-rank (no default)
    if capped and isinstance(rank, int) and isinstance(server.max_lora_rank, int) and rank > server.max_lora_rank:
        src = "max-lora-rank" if "max_lora_rank" in server.explicit else "max-lora-rank (default)"
        nxt = _needed_rank_cap(rank, engines.allowed_caps(server.version)) if vllm else rank
        out.append(
            (
                R.RANK_ABOVE_CAP,
                f"{name}: LoRA rank {rank} > {src} {server.max_lora_rank} on {label}"
                + (f"; set --max-lora-rank {nxt}" if nxt else ""),
                {
                    "rank": rank,
                    "config_r": info.r,
                    "tensor_rank": info.tensor_max_rank,
                    "max_lora_rank": server.max_lora_rank,
                },
            )
        )
    # SRV008 DoRA
    if info.use_dora:
        how = "refuses it" if vllm else "ignores the magnitude vectors silently (wrong outputs, no error)"
        ev = {"outcome": "refuses" if vllm else "different", "feature": "dora"}
        out.append((R.DORA, f"{name}: DoRA adapter (use_dora / lora_magnitude_vector); {label} {how}", ev))
    if vllm:
        bias = info.bias
        if (bias not in (None, "none")) or info.lora_bias:
            out.append(
                (
                    R.BIAS,
                    f"{name}: bias = {bias!r}, lora_bias = {info.lora_bias}; {label} refuses adapter bias",
                    {"bias": bias, "outcome": "refuses", "feature": "bias"},
                )
            )
        mts = info.modules_to_save or []
        full = [k for k in info.tensors if _full_weight(k)]
        bad_mts = [m for m in mts if m not in ("classifier", "score")] if isinstance(mts, list) else [mts]
        if bad_mts or full:
            what = f"modules_to_save = {bad_mts}" if bad_mts else f"full weights {full[:3]}"
            out.append(
                (
                    R.MODULES_TO_SAVE,
                    f"{name}: {what}; {label} rejects them as unsupported LoRA weights",
                    {"modules_to_save": bad_mts, "keys": full[:5], "outcome": "refuses", "feature": "modules_to_save"},
                )
            )
        init = info.init_lora_weights
        if isinstance(init, str) and init.lower().split("_")[0] in engines.FORBIDDEN_INIT:
            out.append(
                (
                    R.INIT_MODIFIES_BASE,
                    f"{name}: init_lora_weights = {init!r} modified the base weights; {label} refuses it",
                    {"init_lora_weights": init, "outcome": "refuses"},
                )
            )
        unknown = [k for k in info.unknown_keys if not _covered(k)]
        peft_type = info.peft_type
        problems = []
        if unknown:
            problems.append(f"unsupported keys {unknown[:3]}" + (f" (+{len(unknown) - 3})" if len(unknown) > 3 else ""))
        if vs_base and base is not None and base.arch in engines.LLAMA_FAMILY:
            outside = [m for m in info.modules if m not in engines.LLAMA_MODULES and not _covered_module(m)]
            if outside:
                problems.append(f"target modules {outside[:4]} not in {base.arch}'s module set")
        if str(peft_type or "LORA").upper() != "LORA":
            problems = []  # its keys are not LoRA keys at all: SRV028 says so once
        if problems:
            out.append(
                (
                    R.UNSUPPORTED_KEYS,
                    f"{name}: " + "; ".join(problems),
                    {"keys": unknown[:10], "peft_type": peft_type, "outcome": "refuses"},
                )
            )
    out.extend(features.feature_checks(server.engine, server.version, name, info))
    # base model: name, dims, vocab
    if base is not None:
        # adapter_config's base vs the served model: probes/adapter (ADP014) already compares it with the
        # manifest's base name, so it is left to that rule when the server serves exactly that name.
        name_dup = own_only and base.manifest_name is not None and base.manifest_name in base.names
        declared = [("adapter base", info.base_model_name_or_path)] if not name_dup else []
        declared.append(("route base_model_name", ref.base_model_name if ref else None))
        for what, d in declared:
            if d and base.names and not _same_model(d, base, adapter_root):
                also = [n for n in server.served_names if n != base.names[0]]
                as_ = f" (served as {', '.join(map(repr, also))})" if also else ""
                msg = f"{name}: {what} {d!r} ≠ served model {base.names[0]!r}{as_}"
                out.append((R.BASE_NAME, msg, {"adapter_base": d, "served": base.names}))
                break
        if base.config and vs_base:
            bad = dim_mismatches(info, base.config)
            if bad:
                out.append(
                    (
                        R.BASE_DIMS,
                        f"{name}: {len(bad)} tensor(s) do not fit the served base, e.g. {bad[0]}",
                        {"mismatches": bad[:10]},
                    )
                )
            vocab = base.config.get("vocab_size")
            if isinstance(vocab, int):
                vbad = []
                for k, shape in info.tensors.items():
                    if not vs_base:
                        break
                    if "lora_embedding_A" in k and len(shape) == 2 and shape[1] != vocab:
                        vbad.append(f"{k} vocab {shape[1]} ≠ base vocab_size {vocab}")
                    elif (
                        ("embed_tokens" in k or "lm_head" in k)
                        and _full_weight(k)
                        and len(shape) == 2
                        and vocab not in shape
                    ):
                        vbad.append(f"{k} shape {list(shape)} ≠ base vocab_size {vocab} (resized vocabulary)")
                if vllm and vocab > engines.vocab_limit(server.version):
                    vbad.append(f"base vocab_size {vocab} > {label} LoRA limit {engines.vocab_limit(server.version)}")
                if vbad:
                    ev = {"problems": vbad[:10], "feature": "resized_vocab"}
                    out.append((R.VOCAB, f"{name}: {vbad[0]}", ev))
    return out


def _full_weight(key: str) -> bool:
    return (
        ".lora_" not in key
        and (key.endswith(".weight") or key.endswith(".bias"))
        and (
            "base_layer" in key
            or "modules_to_save" in key
            or "lm_head" in key
            or "embed_tokens" in key
            or "score" in key
        )
    )


def _covered(key: str) -> bool:
    """Keys another rule reports (magnitudes → DoRA, biases → SRV009, full weights → SRV010)."""
    return "lora_magnitude_vector" in key or (".lora_" in key and key.endswith(".bias")) or _full_weight(key)


def _covered_module(m: str) -> bool:
    return m in ("weight", "bias", "lora_magnitude_vector", "base_layer", "modules_to_save", "default")


def _same_model(declared: str, base: Base, adapter_root: Path | None) -> bool:
    if declared in base.names:
        return True
    p = Path(declared)
    if base.folder is not None and (p.is_absolute() or declared.startswith(".")):
        for anchor in (adapter_root, None):
            cand = p if p.is_absolute() else (anchor / p if anchor else None)
            if cand is not None and cand.exists() and cand.resolve() == base.folder.resolve():
                return True
    return False


def problem_rule(kind: str) -> Rule:
    """The rule a parse problem is reported under."""
    return {
        "unresolved_var": R.UNRESOLVED_VAR,
        "invalid_adapter_spec": R.INVALID_SPEC,
        "outside": R.OUTSIDE_ROOT,
        "cannot_follow": R.CANNOT_VERIFY,
    }.get(kind, R.UNPARSEABLE)


def config_checks(server: Server, path: Path) -> Iterator[Finding]:
    """Rules that need only the config itself."""
    loc = server.name
    for p in server.problems:
        rule = problem_rule(p["kind"])
        yield rule.finding(
            path, f"{loc}: {p['message']}", locator=f"{loc}: line {p['line']}", evidence=dict(p), line=p["line"]
        )
    if server.engine == "vllm":
        if isinstance(server.max_lora_rank, int) and "max_lora_rank" in server.explicit:
            caps = engines.allowed_caps(server.version)
            if server.max_lora_rank not in caps:
                label = engines.version_label("vllm", server.version)
                yield R.CAP_NOT_ALLOWED.finding(
                    path,
                    f"{loc}: --max-lora-rank {server.max_lora_rank} not accepted by {label} "
                    f"(allowed: {', '.join(map(str, sorted(caps)))})",
                    locator=f"{loc}: max-lora-rank",
                    evidence={
                        "max_lora_rank": server.max_lora_rank,
                        "allowed": sorted(caps),
                        "version": server.version,
                    },
                    line=server.line,
                )
        if (
            isinstance(server.max_loras, int)
            and isinstance(server.max_cpu_loras, int)
            and server.max_cpu_loras < server.max_loras
        ):
            yield R.CPU_LORAS.finding(
                path,
                f"{loc}: max-cpu-loras {server.max_cpu_loras} < max-loras {server.max_loras}",
                locator=f"{loc}: max-cpu-loras",
                evidence={"max_loras": server.max_loras, "max_cpu_loras": server.max_cpu_loras},
                line=server.line,
            )
        if server.adapters and not server.enable_lora:
            yield R.LORA_NOT_ENABLED.finding(
                path,
                f"{loc}: {len(server.adapters)} lora-modules ({', '.join(server.routes[:3])}) but no --enable-lora",
                locator=f"{loc}: enable-lora",
                evidence={"routes": server.routes},
                line=server.line,
            )
    served = set(server.served_names or ([server.model] if server.model else []))
    seen: dict[str, AdapterRef] = {}
    for a in server.adapters:
        if a.name in served:
            yield R.NAME_CLASH.finding(
                path,
                f"{loc}: adapter route {a.name!r} equals the served model name",
                locator=f"{loc}: {a.name}",
                evidence={"name": a.name},
                line=a.line,
            )
        if a.name in seen:
            yield R.DUPLICATE_ROUTE.finding(
                path,
                f"{loc}: adapter name {a.name!r} routed twice ({seen[a.name].target!r} and {a.target!r})",
                locator=f"{loc}: {a.name}",
                evidence={"name": a.name, "targets": [seen[a.name].target, a.target]},
                line=a.line,
            )
        seen.setdefault(a.name, a)


# ------------------------------------------------------------------ facts ↔ servers


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


def serving_env(ctx: ProbeContext) -> dict[str, str]:
    env = ctx.section("serving").get("env") or {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


class ServingProbe(Probe):
    name = "serving"
    kinds = frozenset({"serving_config"})
    rules = R.RULES

    def check(self, artifact: Artifact, ctx: ProbeContext) -> Iterable[Finding]:
        env = serving_env(ctx)
        pc = parse_config(artifact.path, env, root=ctx.rollout.root)
        findings: list[Finding] = []
        for p in pc.problems:
            rule = problem_rule(p["kind"])
            findings.append(
                rule.finding(artifact.path, p["message"], locator=f"line {p['line']}", evidence=dict(p), line=p["line"])
            )
        servers = []
        for srv in pc.servers:
            if srv.config_file:
                srv = self._with_config_file(srv, artifact, ctx, env, findings)
            servers.append(srv)
            findings.extend(config_checks(srv, artifact.path))
        artifact.facts.update(
            {
                "format": pc.format,
                "servers": [s.to_facts() for s in servers],
                "problems": pc.problems,
                **({"routes": [asdict(r) for r in pc.routes]} if pc.routes else {}),
            }
        )
        return findings

    def _with_config_file(
        self, srv: Server, artifact: Artifact, ctx: ProbeContext, env: dict[str, str], findings: list[Finding]
    ) -> Server:
        assert srv.config_file is not None
        res = resolve_target(srv.config_file, srv, ctx.rollout, ctx, artifact.path.parent)
        path = res.path
        if res.status == "ok" and path is not None and not path.exists():
            alt = artifact.path.parent / srv.config_file
            path = alt if alt.exists() and _within(alt, ctx.rollout.root) else path
        unusable = None  # (rule, what is wrong with the --config file)
        if res.status == "outside":
            unusable = (R.OUTSIDE_ROOT, f"--config {srv.config_file} is outside the rollout; not followed")
        elif path is None or not path.is_file():
            unusable = (
                (R.CANNOT_VERIFY, f"--config {srv.config_file} exists only in the container")
                if res.status == "container"
                else (R.UNPARSEABLE, f"--config file {srv.config_file} not found")
            )
        if unusable is not None:
            rule, what = unusable
            findings.append(
                rule.finding(artifact.path, f"{srv.name}: {what}", locator=f"{srv.name}: config", line=srv.line)
            )
            return srv
        try:
            return apply_config_file(srv, path, env)
        except ReadError as err:
            findings.append(
                R.UNPARSEABLE.finding(
                    artifact.path,
                    f"{srv.name}: --config {srv.config_file}: {err.reason} {err.where}".strip(),
                    locator=f"{srv.name}: config",
                    line=srv.line,
                )
            )
            return srv

    def check_rollout(self, rollout: Rollout, ctx: ProbeContext) -> Iterable[Finding]:
        from probes.serving.matrix import rollout_matrix

        findings: list[Finding] = []
        for artifact, server in rollout_servers(rollout):
            base = served_base(server, rollout, ctx, artifact.path)
            findings.extend(base.findings)
            findings.extend(server_checks(server, base, artifact.path))
            for ref in server.adapters:
                findings.extend(self._adapter(ref, server, base, rollout, ctx, artifact))
        findings.extend(route_checks(rollout))
        rollout_matrix(rollout, ctx)
        return findings

    def _adapter(
        self, ref: AdapterRef, server: Server, base: Base, rollout: Rollout, ctx: ProbeContext, artifact: Artifact
    ) -> Iterator[Finding]:
        path = artifact.path
        loc = f"{server.name}: {ref.name}"
        res = resolve_target(ref.target, server, rollout, ctx, path.parent)
        if res.status == "unresolved":
            return  # already SRV002
        if res.status == "outside":
            yield R.OUTSIDE_ROOT.finding(
                path,
                f"{loc}: adapter path {ref.target!r} resolves to {res.path} outside the rollout {rollout.root}; "
                "not followed",
                locator=loc,
                evidence={"path": ref.target},
                line=ref.line,
            )
            return
        if res.status in ("container", "hub"):
            what = "exists only inside the container" if res.status == "container" else "looks like a hub id"
            yield R.CANNOT_VERIFY.finding(
                path,
                f"{loc}: {ref.target!r} {what}; adapter checks skipped",
                locator=loc,
                evidence={"path": ref.target},
                line=ref.line,
            )
            return
        folder = res.path
        assert folder is not None
        missing = adapter_missing(folder)
        if missing:
            yield R.ADAPTER_NOT_FOUND.finding(
                path,
                f"{loc}: {missing}",
                locator=loc,
                evidence={"path": ref.target, "resolved": str(folder)},
                line=ref.line,
            )
            return
        info = adapter_info(folder, ctx)
        checks = adapter_checks(server, ref, info, base, folder, own_only=True) + silent_noop_checks(
            server, ref, info, base, folder, ctx
        )
        checks += tokenizer_checks(server, ref, info, base, folder, rollout, ctx, path.parent)
        for rule, msg, ev in checks:
            yield rule.finding(path, msg, locator=loc, evidence={"adapter": ref.name, **ev}, line=ref.line)


def silent_noop_checks(
    server: Server, ref: AdapterRef, info: AdapterInfo, base: Base, folder: Path, ctx: ProbeContext
) -> list[Check]:
    """Routes that load fine and answer like the base model (probes.serving.noop); per served route only."""
    out: list[Check] = []
    label = engines.version_label(server.engine, server.version)
    for got in (
        noop.name_mismatch(info, base.folder, base.config, ctx) if base.folder is not None else None,
        noop.not_applied(server.lora_target_modules, label, info),
        noop.zero_b(folder, info.weights),
    ):
        if got is not None:
            rule, msg, ev = got
            out.append((rule, f"{ref.name}: {msg}", ev))
    return out


def tokenizer_checks(
    server: Server,
    ref: AdapterRef,
    info: AdapterInfo,
    base: Base,
    folder: Path,
    rollout: Rollout,
    ctx: ProbeContext,
    config_dir: Path,
) -> list[Check]:
    """The adapter's training tokenizer against the one this server tokenizes with (probes.serving.tokenizer)."""
    trained = tok.trained_tokenizer(folder, ctx)
    if trained is None:
        return []
    served_folder = base.folder
    if server.tokenizer:
        res = resolve_target(server.tokenizer, server, rollout, ctx, config_dir)
        served_folder = res.path if res.status == "ok" and res.path is not None and res.path.is_dir() else None
    if served_folder is None:
        return []
    served = tok.read_tokenizer(served_folder, ctx)
    if served is not None and served.folder.resolve() == trained.folder.resolve():
        return []  # the server tokenizes with the adapter's own tokenizer
    return [
        (rule, f"{ref.name}: {msg}", ev)
        for rule, msg, ev in tok.lineage_checks(trained, served, served_folder, base.config, info)
    ]


def adapter_missing(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"no adapter at {folder} ({'a file, not a folder' if folder.exists() else 'path does not exist'})"
    if any((folder / n).is_file() for n in WEIGHT_NAMES):
        return None
    others = sorted(p.name for p in folder.glob("*.safetensors"))[:3]
    subs = sorted(p.parent.name for p in folder.glob("*/adapter_model.safetensors"))[:3]
    hint = f"; found {others}" if others else f"; adapters in subfolders {subs}" if subs else ""
    return f"no adapter_model.safetensors/.bin/.pt in {folder} (vLLM: 'No adapter found'){hint}"


def server_checks(server: Server, base: Base, path: Path) -> Iterator[Finding]:
    """Server × base model (architecture, quantization)."""
    label = engines.version_label(server.engine, server.version)
    if not server.enable_lora and not server.adapters:
        return
    sup = engines.lora_arch_support(server.engine, base.arch)
    if sup is False:
        yield R.ARCH_NO_LORA.finding(
            path,
            f"{server.name}: {label} has no LoRA support for {base.arch} (base {base.folder})",
            locator=f"{server.name}: model",
            evidence={"architecture": base.arch},
            line=server.line,
        )
    for method, where in ((server.quantization, "--quantization"), (base.quant_method, "base config.json")):
        if method and not engines.quant_supported(server.engine, server.version, method):
            yield R.QUANT.finding(
                path,
                f"{server.name}: {where} quantization {method!r} is not supported with LoRA by {label}",
                locator=f"{server.name}: quantization",
                evidence={"method": method, "source": where, "engine": server.engine, "version": server.version},
                line=server.line,
            )
            break


def route_checks(rollout: Rollout) -> Iterator[Finding]:
    """Routing-layer entries (LiteLLM) against what the rollout's servers serve."""
    routers = [a for a in rollout.of_kind("serving_config") if a.facts.get("routes")]
    if not routers:
        return
    servers = [s for _, s in rollout_servers(rollout)]
    bases = {n for s in servers for n in [*([s.model] if s.model else []), *s.served_names]}
    adapters = {r for s in servers for r in s.routes}
    declared = {a.get("name") for a in (rollout.manifest or {}).get("adapters") or [] if isinstance(a, dict)}
    for art in routers:
        for r in art.facts["routes"]:
            loc = f"model_list: {r['name']}"
            ev = {"name": r["name"], "model": r["model"], "provider": r["provider"], "api_base": r["api_base"]}
            if not servers:
                yield R.CANNOT_VERIFY.finding(
                    art.path,
                    f"route {r['name']!r} → {r['model']!r}: no server config in the rollout to check it against",
                    locator=loc,
                    evidence=ev,
                    line=r["line"],
                )
            elif r["model"] in adapters:
                continue
            elif r["model"] in bases:
                if r["name"] in adapters or r["name"] in declared:
                    yield R.ROUTE_TO_BASE.finding(
                        art.path,
                        f"router sends {r['name']!r} to the base model {r['model']!r}, not to the adapter "
                        f"route {r['name']!r}: every request is answered by the base model",
                        locator=loc,
                        evidence={**ev, "adapter_routes": sorted(adapters)},
                        line=r["line"],
                    )
            else:
                served = sorted(adapters | bases)
                yield R.ROUTE_UNSERVED.finding(
                    art.path,
                    f"router sends {r['name']!r} to {r['model']!r}, which no server in the rollout serves "
                    f"(served: {', '.join(served[:6])})",
                    locator=loc,
                    evidence={**ev, "served": served[:20]},
                    line=r["line"],
                )
