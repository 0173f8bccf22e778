"""Serving configs → one normalized model (`Server`), whatever wrote them.

Sources: vLLM / SGLang command lines in shell scripts and Makefile recipes, Dockerfiles (CMD/ENTRYPOINT +
base image), docker-compose `command:`/`entrypoint:`/`environment:` (and the Dockerfile a service is
`build:` from), Kubernetes container `command`/`args`/`env`, KubeAI `Model` resources, Helm values,
`vllm serve --config` YAML, Python launchers that build the argument list; TGI (`--lora-adapters`,
`LORA_ADAPTERS`); LoRAX launcher arguments; a LiteLLM proxy config in front of them (routes only).
What cannot be parsed is recorded in `Server.problems` / `ParsedConfig.problems` with its line, never
guessed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json, read_text_capped
from probes.common.yamlsafe import line_of, load_yaml, load_yaml_text
from probes.serving.envsubst import interpolate

ENGINES = ("vllm", "tgi", "lorax", "sglang")
VLLM_DEFAULTS = {"max_lora_rank": 16, "max_loras": 1}
SGLANG_DEFAULTS = {"max_loras": 8}  # --max-loras-per-batch; --max-lora-rank is inferred from the adapters

# vLLM options that take no value (anything else followed by a non-flag token takes that token).
_VLLM_BOOL = {
    "enable-lora",
    "trust-remote-code",
    "enforce-eager",
    "disable-log-requests",
    "disable-log-stats",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "fully-sharded-loras",
    "enable-chunked-prefill",
    "disable-custom-all-reduce",
    "enable-auto-tool-choice",
    "disable-frontend-multiprocessing",
    "enable-lora-bias",
    "headless",
    "api-server-count",
    "skip-tokenizer-init",
    "disable-sliding-window",
    "enable-expert-parallel",
    "enable-sleep-mode",
    "async-scheduling",
    "no-enable-lora",
}
_VLLM_BOOL.discard("api-server-count")
_VLLM_MULTI = {"lora-modules", "allowed-origins", "middleware", "allowed-methods", "allowed-headers"}
_SGLANG_BOOL = {"enable-lora", "trust-remote-code", "disable-radix-cache", "enable-torch-compile", "skip-server-warmup"}
_SGLANG_MULTI = {"lora-paths", "lora-target-modules"}
_TGI_BOOL = {"trust-remote-code", "disable-custom-kernels", "sharded", "json-output", "disable-grammar-support"}
_IMAGE = re.compile(
    r"(?P<repo>(?:[\w.-]+(?::\d+)?/)?(?:vllm/vllm-openai|huggingface/text-generation-inference|"
    r"predibase/lorax|lmsysorg/sglang))(?::(?P<tag>[\w.-]+))?"
)
_PIP_VLLM = re.compile(r"\bvllm==(\d+(?:\.\d+)*)")


@dataclass
class AdapterRef:
    name: str
    target: str  # path or hub id, as written (after interpolation)
    line: int = 1
    base_model_name: str | None = None
    raw: str = ""


@dataclass
class Server:
    """One serving process, normalized."""

    engine: str
    source: str  # shell | makefile | dockerfile | compose | k8s | kubeai | helm | vllm-yaml | python
    name: str = ""  # service / container / script line
    line: int = 1
    version: str | None = None
    model: str | None = None
    served_names: list[str] = field(default_factory=list)
    enable_lora: bool = False
    max_lora_rank: int | None = None
    max_loras: int | None = None
    max_cpu_loras: int | None = None
    lora_dtype: str | None = None
    quantization: str | None = None
    adapters: list[AdapterRef] = field(default_factory=list)
    explicit: list[str] = field(default_factory=list)  # options written in the config (others are defaults)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (host, container)
    problems: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "message", "line"}
    config_file: str | None = None  # `--config` YAML it reads
    options: dict[str, list[Any]] = field(default_factory=dict)  # engine options as written
    tokenizer: str | None = None  # --tokenizer / --tokenizer-path: what the server tokenizes with
    lora_target_modules: list[str] = field(default_factory=list)  # modules the engine applies LoRA to

    @property
    def routes(self) -> list[str]:
        return [a.name for a in self.adapters]

    @property
    def label(self) -> str:
        v = f" {self.version}" if self.version else ""
        return f"{self.engine}{v}"

    def to_facts(self) -> dict[str, Any]:
        d = asdict(self)
        d["routes"] = self.routes
        d["volumes"] = [list(v) for v in self.volumes]
        return d


@dataclass
class Route:
    """One entry of a routing layer (LiteLLM `model_list`): a public name sent on to a backend model name."""

    name: str  # what clients ask for
    model: str  # what the router sends to the backend (provider prefix removed)
    provider: str = ""  # hosted_vllm, openai, …
    api_base: str | None = None
    line: int = 1


@dataclass
class ParsedConfig:
    path: Path
    format: str
    servers: list[Server] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    routes: list[Route] = field(default_factory=list)


def _problem(kind: str, message: str, line: int = 1) -> dict[str, Any]:
    return {"kind": kind, "message": message, "line": line}


# ------------------------------------------------------------------ engine argument normalization


def _int(server: Server, key: str, value: Any, line: int) -> int | None:
    if isinstance(value, bool):
        value = None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        if "$" in str(value):
            return None  # an unresolved variable, reported as such (SRV002)
        server.problems.append(_problem("unparseable", f"{key} = {value!r} is not an integer", line))
        return None


def parse_opts(tokens: list[str], bools: set[str], multi: set[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """`--a b --c=d --flag x y` → ({a: [b], c: [d], flag: [True]}, positionals)."""
    opts: dict[str, list[Any]] = {}
    pos: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.startswith("--") and len(t) > 2:
            key, eq, val = t[2:].partition("=")
            key = key.replace("_", "-")
            if eq:
                opts.setdefault(key, []).append(val)
            elif key in bools:
                opts.setdefault(key, []).append(True)
            elif key in multi:
                j = i + 1
                while j < len(tokens) and not tokens[j].startswith("--"):
                    opts.setdefault(key, []).append(tokens[j])
                    j += 1
                opts.setdefault(key, [])
                i = j
                continue
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                opts.setdefault(key, []).append(tokens[i + 1])
                i += 1
            else:
                opts.setdefault(key, []).append(True)
        else:
            pos.append(t)
        i += 1
    return opts, pos


def _last(opts: dict[str, list[Any]], *keys: str) -> Any:
    for k in keys:
        if opts.get(k):
            return opts[k][-1]
    return None


def _parse_lora_module(server: Server, item: Any, line: int, text: str) -> None:
    """One `--lora-modules` value: `name=path` or JSON {"name","path","base_model_name"}."""
    if isinstance(item, dict):
        server.problems.append(
            _problem(
                "invalid_adapter_spec",
                f"lora-modules item {item!r} is a YAML mapping; vLLM turns it into a Python repr, which is not "
                "JSON (vllm#9655) — write it as a JSON string or name=path",
                line_of(text, str(next(iter(item.values()), ""))) if item else line,
            )
        )
        return
    s = str(item).strip()
    ln = line_of(text, s) if text else line
    if s.startswith("{"):
        try:
            obj = loads_json(s)
        except ValueError:
            server.problems.append(_problem("invalid_adapter_spec", f"lora-modules item {s!r} is not valid JSON", ln))
            return
        if not isinstance(obj, dict) or not obj.get("name") or not obj.get("path"):
            server.problems.append(_problem("invalid_adapter_spec", f"lora-modules JSON {s!r} needs name and path", ln))
            return
        server.adapters.append(AdapterRef(str(obj["name"]), str(obj["path"]), ln, obj.get("base_model_name"), s))
        return
    name, eq, path = s.partition("=")
    if not eq or not name or not path:
        server.problems.append(_problem("invalid_adapter_spec", f"lora-modules item {s!r} is not name=path", ln))
        return
    server.adapters.append(AdapterRef(name.strip(), path.strip(), ln, None, s))


def vllm_server(opts: dict[str, list[Any]], pos: list[str], server: Server, text: str = "") -> Server:
    line = server.line
    server.options = {k: list(v) for k, v in opts.items()}
    if pos:
        server.model = str(pos[0])
    model = _last(opts, "model")
    if model is not None:
        server.model = str(model)
    names = [str(x) for x in opts.get("served-model-name", []) if x is not True]
    server.served_names = [n for v in names for n in v.split()] if names else []
    server.enable_lora = any(v is True or str(v).lower() in ("true", "1", "yes") for v in opts.get("enable-lora", []))
    for key, attr in (
        ("max-lora-rank", "max_lora_rank"),
        ("max-loras", "max_loras"),
        ("max-cpu-loras", "max_cpu_loras"),
    ):
        v = _last(opts, key)
        if v is not None:
            server.explicit.append(attr)
            setattr(server, attr, _int(server, key, v, line_of(text, key) if text else line))
    if server.max_lora_rank is None and "max_lora_rank" not in server.explicit:
        server.max_lora_rank = VLLM_DEFAULTS["max_lora_rank"]
    if server.max_loras is None and "max_loras" not in server.explicit:
        server.max_loras = VLLM_DEFAULTS["max_loras"]
    if server.max_cpu_loras is None and "max_cpu_loras" not in server.explicit:
        server.max_cpu_loras = server.max_loras
    dt = _last(opts, "lora-dtype")
    server.lora_dtype = str(dt) if dt is not None else "auto"
    q = _last(opts, "quantization", "q")
    server.quantization = str(q) if q is not None and q is not True else None
    for item in opts.get("lora-modules", []):
        _parse_lora_module(server, item, line, text)
    cfg = _last(opts, "config")
    if isinstance(cfg, str):
        server.config_file = cfg
    tok = _last(opts, "tokenizer")
    server.tokenizer = str(tok) if isinstance(tok, str) else None
    server.lora_target_modules = [str(m) for v in opts.get("lora-target-modules", []) for m in str(v).split(",") if m]
    return server


def _parse_sglang_lora(server: Server, item: Any, line: int) -> None:
    """One `--lora-paths` value: PATH | NAME=PATH | JSON {"lora_name","lora_path","pinned"}."""
    s = str(item).strip()
    if s.startswith("{"):
        try:
            obj = loads_json(s)
        except ValueError:
            server.problems.append(_problem("invalid_adapter_spec", f"lora-paths item {s!r} is not valid JSON", line))
            return
        if not isinstance(obj, dict) or not obj.get("lora_name") or not obj.get("lora_path"):
            server.problems.append(
                _problem("invalid_adapter_spec", f"lora-paths JSON {s!r} needs lora_name and lora_path", line)
            )
            return
        server.adapters.append(AdapterRef(str(obj["lora_name"]), str(obj["lora_path"]), line, None, s))
        return
    name, eq, path = s.partition("=")
    if eq and (not name or not path):
        server.problems.append(_problem("invalid_adapter_spec", f"lora-paths item {s!r} is not NAME=PATH", line))
        return
    if not eq:
        name, path = s, s  # a bare path is served under its own path as the name
    server.adapters.append(AdapterRef(name.strip(), path.strip(), line, None, s))


def sglang_server(opts: dict[str, list[Any]], server: Server) -> Server:
    """`python -m sglang.launch_server` options (or ServerArgs keywords) → Server."""
    server.options = {k: list(v) for k, v in opts.items()}
    model = _last(opts, "model-path", "model")
    server.model = str(model) if model is not None and model is not True else None
    names = [str(x) for x in opts.get("served-model-name", []) if x is not True]
    server.served_names = names
    for item in opts.get("lora-paths", []):
        _parse_sglang_lora(server, item, server.line)
    flag = [v for v in opts.get("enable-lora", [])]
    server.enable_lora = bool(server.adapters) or any(v is True or str(v).lower() in ("true", "1") for v in flag)
    for key, attr in (("max-loras-per-batch", "max_loras"), ("max-lora-rank", "max_lora_rank")):
        v = _last(opts, key)
        if v is not None:
            server.explicit.append(attr)
            setattr(server, attr, _int(server, key, v, server.line))
    if server.max_loras is None and "max_loras" not in server.explicit:
        server.max_loras = SGLANG_DEFAULTS["max_loras"]
    v = _last(opts, "max-loaded-loras")
    if v is not None:
        server.explicit.append("max_cpu_loras")
        server.max_cpu_loras = _int(server, "max-loaded-loras", v, server.line)
    q = _last(opts, "quantization")
    server.quantization = str(q) if q is not None and q is not True else None
    tok = _last(opts, "tokenizer-path")
    server.tokenizer = str(tok) if isinstance(tok, str) else None
    server.lora_target_modules = [str(m) for v in opts.get("lora-target-modules", []) for m in str(v).split(",") if m]
    return server


def tgi_server(opts: dict[str, list[Any]], env: dict[str, str], server: Server, text: str = "") -> Server:
    server.model = _last(opts, "model-id") or env.get("MODEL_ID")
    tok = _last(opts, "tokenizer-config-path")
    server.tokenizer = str(tok) if isinstance(tok, str) else None
    q = _last(opts, "quantize") or env.get("QUANTIZE")
    server.quantization = str(q) if q else None
    spec = _last(opts, "lora-adapters") or env.get("LORA_ADAPTERS")
    server.enable_lora = bool(spec)
    if server.engine == "lorax":
        v = _last(opts, "max-active-adapters") or env.get("MAX_ACTIVE_ADAPTERS")
        if v is not None:
            server.explicit.append("max_loras")
            server.max_loras = _int(server, "max-active-adapters", v, server.line)
        server.enable_lora = True  # LoRAX loads adapters per request
    if spec:
        ln = line_of(text, str(spec)) if text else server.line
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            if item.count("=") > 1 or item.count("@") > 1:
                server.problems.append(
                    _problem("invalid_adapter_spec", f"LORA_ADAPTERS entry {item!r} has more than one '=' or '@'", ln)
                )
                continue
            name, eq, target = item.partition("=")
            if not eq:
                target = name
                name = name.split("@")[0]
            server.adapters.append(AdapterRef(name.strip(), target.strip(), ln, None, item))
    return server


def image_engine(image: str) -> tuple[str | None, str | None]:
    m = _IMAGE.search(image or "")
    if not m:
        return None, None
    repo = m.group("repo")
    engine = (
        "vllm" if "vllm" in repo else "tgi" if "text-generation" in repo else "sglang" if "sglang" in repo else "lorax"
    )
    tag = m.group("tag")
    version = None
    if tag and tag != "latest":
        vm = re.match(r"v?(\d+(?:\.\d+)+)", tag)
        version = vm.group(1) if vm else None
    return engine, version


def from_argv(
    argv: list[str],
    *,
    source: str,
    line: int,
    name: str,
    env: dict[str, str],
    image: str | None = None,
    text: str = "",
) -> Server | None:
    """A Server from a command line (launcher found in argv, or the engine image's default entrypoint)."""
    engine = None
    args: list[str] = []
    for i, t in enumerate(argv):
        base = t.rsplit("/", 1)[-1]
        if base == "vllm" and i + 1 < len(argv) and argv[i + 1] == "serve":
            engine, args = "vllm", argv[i + 2 :]
            break
        if t in ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server"):
            engine, args = "vllm", argv[i + 1 :]
            break
        if t in ("sglang.launch_server", "sglang.launch_server.py") or base == "launch_server.py":
            engine, args = "sglang", argv[i + 1 :]
            break
        if base == "text-generation-launcher":
            engine, args = "tgi", argv[i + 1 :]
            break
        if base == "lorax-launcher":
            engine, args = "lorax", argv[i + 1 :]
            break
        if base in ("docker", "podman") and "run" in argv[i + 1 : i + 2]:
            # docker run [opts] IMAGE [args]: find the image among the tokens
            for j in range(i + 2, len(argv)):
                eng, ver = image_engine(argv[j])
                if eng and not argv[j].startswith("-"):
                    sub = from_argv(
                        argv[j + 1 :], source=source, line=line, name=name, env=env, image=argv[j], text=text
                    )
                    if sub is not None:
                        _docker_run_env(argv[i + 2 : j], sub, env)
                    return sub
            return None
    ver = None
    if engine is None and image:
        engine, ver = image_engine(image)
        if engine == "sglang":
            return None  # the SGLang image has no serving entrypoint: the command must name launch_server
        args = list(argv)
        if engine == "vllm" and args[:1] == ["serve"]:
            args = args[1:]
    elif image:
        ver = image_engine(image)[1]
    if engine is None:
        return None
    server = Server(engine=engine, source=source, name=name, line=line, version=ver)
    if engine == "vllm":
        opts, pos = parse_opts(args, _VLLM_BOOL, _VLLM_MULTI)
        pos = [p for p in pos if p not in ("python", "python3", "-m")]
        return vllm_server(opts, pos, server, text)
    if engine == "sglang":
        opts, _ = parse_opts(args, _SGLANG_BOOL, _SGLANG_MULTI)
        return sglang_server(opts, server)
    opts, _ = parse_opts(args, _TGI_BOOL, set())
    return tgi_server(opts, env, server, text)


def _docker_run_env(opts: list[str], server: Server, env: dict[str, str]) -> None:
    for i, t in enumerate(opts):
        if t in ("-v", "--volume") and i + 1 < len(opts):
            host, _, rest = opts[i + 1].partition(":")
            server.volumes.append((host, rest.split(":")[0]))


# ------------------------------------------------------------------ file formats


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 1
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


_ASSIGN = re.compile(r"^(?:export\s+|readonly\s+|declare\s+(?:-\w+\s+)?)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_LAUNCH = re.compile(
    r"vllm\s+serve|vllm\.entrypoints|sglang\.launch_server|text-generation-launcher|lorax-launcher|"
    r"docker\s+run|podman\s+run"
)
_SEPARATORS = {"&&", "||", ";", "|", "&"}


# shlex builds each token a character at a time (quadratic on one huge word): real command lines are short.
MAX_COMMAND = 64 * 1024


def _split(line: str, lineno: int, problems: list[dict[str, Any]]) -> list[str] | None:
    if len(line) > MAX_COMMAND:
        problems.append(
            _problem("unparseable", f"command at line {lineno} is {len(line)} characters long; not split", lineno)
        )
        return None
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        problems.append(
            _problem("unparseable", f"cannot split command at line {lineno}: {exc} ({line.strip()[:80]!r})", lineno)
        )
        return None


def _interp_tokens(
    tokens: list[str], env: dict[str, str], problems: list[dict[str, Any]], line: int, *, k8s: bool = False
) -> list[str]:
    out = []
    for t in tokens:
        unresolved: list[str] = []
        out.append(interpolate(t, env, unresolved, k8s=k8s))
        for name in unresolved:
            problems.append(
                _problem("unresolved_var", f"${{{name}}} is not set in the file or the settings ([serving] env)", line)
            )
    return out


def _cut(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for t in tokens:
        if t in _SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(t.rstrip(";"))
    return [p for p in parts if p]


def parse_shell(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "shell", text=text)
    scan_commands(pc, path, _logical_lines(text), dict(env), source="shell")
    return pc


def scan_commands(
    pc: ParsedConfig,
    path: Path,
    lines: list[tuple[int, str]],
    env: dict[str, str],
    *,
    source: str,
    names: dict[int, str] | None = None,
) -> None:
    """Shell-like command lines (a script, Makefile recipe lines) → servers; assignments feed `env`."""
    version = None
    for lineno, line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _PIP_VLLM.search(stripped)
        if m:
            version = m.group(1)
        am = _ASSIGN.match(stripped)
        if am and " " not in am.group(2).strip().strip("'\""):
            toks = _split(am.group(2), lineno, pc.problems) if am.group(2) else [""]
            if toks is not None:
                val = interpolate(toks[0] if toks else "", env)
                env[am.group(1)] = val
            continue
        if not _LAUNCH.search(stripped):
            continue
        tokens = _split(stripped, lineno, pc.problems)
        if tokens is None:
            continue
        name = (names or {}).get(lineno) or f"{path.name}:{lineno}"
        for part in _cut(tokens):
            problems: list[dict[str, Any]] = []
            part = _interp_tokens(part, env, problems, lineno)
            srv = from_argv(part, source=source, line=lineno, name=name, env=env, text="")
            if srv is None:
                continue
            for a in srv.adapters:
                a.line = lineno
            srv.problems[:0] = problems
            for p in srv.problems:
                p["line"] = lineno
            srv.version = srv.version or version
            pc.servers.append(srv)


@dataclass
class DockerfileParts:
    """What a Dockerfile contributes to a container: base image, env, ENTRYPOINT/CMD, pinned version."""

    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    entry: tuple[int, list[str]] | None = None
    cmd: tuple[int, list[str]] | None = None
    version: str | None = None


def dockerfile_parts(text: str, env: dict[str, str], problems: list[dict[str, Any]]) -> DockerfileParts:
    """The last stage's FROM, ENV/ARG, ENTRYPOINT and CMD (variables interpolated as Docker does)."""
    out = DockerfileParts(env=dict(env))
    env = out.env
    for lineno, line in _logical_lines(text):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        instr, _, rest = s.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "FROM":
            out.image = rest.split()[0] if rest else None
            out.entry = out.cmd = None
        elif instr in ("ENV", "ARG"):
            if "=" in rest:
                toks = _split(rest, lineno, problems) or []
                for t in toks:
                    k, eq, v = t.partition("=")
                    if eq:
                        env.setdefault(k, interpolate(v, env)) if instr == "ARG" else env.__setitem__(
                            k, interpolate(v, env)
                        )
            elif rest:
                k, _, v = rest.partition(" ")
                env[k] = v.strip()
        elif instr == "RUN":
            m = _PIP_VLLM.search(rest)
            if m:
                out.version = m.group(1)
        elif instr in ("CMD", "ENTRYPOINT"):
            if rest.startswith("["):
                try:
                    argv = loads_json(rest)
                    if not isinstance(argv, list):
                        raise ValueError
                    argv = [str(x) for x in argv]
                except ValueError:
                    problems.append(_problem("unparseable", f"{instr} at line {lineno} is not a JSON array", lineno))
                    continue
            else:
                argv = _split(rest, lineno, problems)
                if argv is None:
                    continue
            argv = _interp_tokens(argv, env, problems, lineno)
            if instr == "CMD":
                out.cmd = (lineno, argv)
            else:
                out.entry = (lineno, argv)
    return out


def parse_dockerfile(path: Path, text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "dockerfile", text=text)
    parts = dockerfile_parts(text, env, pc.problems)
    argv = (parts.entry[1] if parts.entry else []) + (parts.cmd[1] if parts.cmd else [])
    line = (parts.entry or parts.cmd or (1, []))[0]
    srv = from_argv(argv, source="dockerfile", line=line, name=path.name, env=parts.env, image=parts.image, text="")
    if srv is not None:
        srv.version = srv.version or parts.version
        for a in srv.adapters:
            a.line = line
        for p in srv.problems:
            p["line"] = line
        pc.servers.append(srv)
    return pc


def _env_of(
    value: Any, env: dict[str, str], problems: list[dict[str, Any]], text: str, *, k8s: bool = False
) -> dict[str, str]:
    out: dict[str, str] = {}
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        for e in value:
            if isinstance(e, str):
                k, _, v = e.partition("=")
                items.append((k, v))
            elif isinstance(e, dict) and "name" in e:
                if "value" in e:
                    items.append((str(e["name"]), e["value"]))
                else:
                    problems.append(
                        _problem(
                            "unresolved_var",
                            f"env {e['name']} comes from {sorted(set(e) - {'name'})} (not readable statically)",
                            line_of(text, str(e["name"])),
                        )
                    )
    for k, v in items:
        if v is None:
            continue
        unresolved: list[str] = []
        scope = {**env, **out} if k8s else env
        out[str(k)] = interpolate(str(v), scope, unresolved, k8s=k8s)
        for name in unresolved:
            problems.append(_problem("unresolved_var", f"${{{name}}} (in env {k}) is not set", line_of(text, name)))
    return out


def _argv_of(value: Any, problems: list[dict[str, Any]], line: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(x) for x in value]
    toks = _split(str(value), line, problems)
    return toks or []


def _dotenv(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    p = folder / ".env"
    try:
        text = read_text_capped(p, 100_000)
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
    return out


def _compose_interp(obj: Any, env: dict[str, str], problems: list[dict[str, Any]], text: str) -> Any:
    if isinstance(obj, str):
        unresolved: list[str] = []
        v = interpolate(obj, env, unresolved)
        for name in unresolved:
            problems.append(
                _problem(
                    "unresolved_var",
                    f"${{{name}}} is not set (no .env entry, no default)",
                    line_of(text, "${" + name, "$" + name),
                )
            )
        return v
    if isinstance(obj, list):
        return [_compose_interp(x, env, problems, text) for x in obj]
    if isinstance(obj, dict):
        return {k: _compose_interp(v, env, problems, text) for k, v in obj.items()}
    return obj


_FOLLOW_KINDS = ("outside", "cannot_follow")


def _build_dockerfile(
    svc: dict[str, Any], compose: Path, root: Path | None, problems: list[dict[str, Any]], line: int
) -> tuple[Path, DockerfileParts] | None:
    """The Dockerfile a compose service is `build:` from, parsed — only when it lies inside the target."""
    build = svc.get("build")
    if isinstance(build, str):
        context, dockerfile, args = build, "Dockerfile", {}
    elif isinstance(build, dict):
        context = str(build.get("context") or ".")
        dockerfile = str(build.get("dockerfile") or "Dockerfile")
        args = build.get("args") or {}
    else:
        return None
    if "://" in context or context.startswith("git@"):
        problems.append(
            _problem("cannot_follow", f"build context {context!r} is remote; its Dockerfile was not read", line)
        )
        return None
    path = (compose.parent / context / dockerfile).resolve()
    fence = (root or compose.parent).resolve()
    if fence not in path.parents:
        problems.append(
            _problem("outside", f"build Dockerfile {path} is outside the target {fence}; not followed", line)
        )
        return None
    try:
        text = read_text_capped(path, 1_000_000)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(_problem("unparseable", f"build Dockerfile {path.name} cannot be read: {exc}", line))
        return None
    benv: dict[str, str] = {}
    if isinstance(args, dict):
        benv = {str(k): str(v) for k, v in args.items() if v is not None}
    elif isinstance(args, list):
        benv = dict(str(a).partition("=")[::2] for a in args)
    return path, dockerfile_parts(text, benv, [])


def parse_compose(
    path: Path, doc: dict[str, Any], text: str, env: dict[str, str], root: Path | None = None
) -> ParsedConfig:
    pc = ParsedConfig(path, "compose", text=text)
    env = {**_dotenv(path.parent), **env}
    services = doc.get("services")
    if not isinstance(services, dict):
        return pc
    for sname, svc in services.items():
        if not isinstance(svc, dict):
            continue
        problems: list[dict[str, Any]] = []
        svc = _compose_interp(svc, env, problems, text)
        line = line_of(text, f"{sname}:")
        built = _build_dockerfile(svc, path, root, problems, line)
        parts = built[1] if built else DockerfileParts()
        senv = {**parts.env, **_env_of(svc.get("environment"), env, problems, text)}
        # compose `entrypoint:` replaces the image's ENTRYPOINT and drops its CMD; `command:` replaces CMD.
        if "entrypoint" in svc:
            argv = _argv_of(svc.get("entrypoint"), problems, line) + _argv_of(svc.get("command"), problems, line)
        else:
            entry = parts.entry[1] if parts.entry else []
            cmd = _argv_of(svc.get("command"), problems, line) if "command" in svc else (parts.cmd or (0, []))[1]
            argv = entry + cmd
        image = str(svc.get("image") or "")
        if built and not image_engine(image)[0]:
            image = parts.image or image  # the service's `image:` only names the build result
        srv = from_argv(argv, source="compose", line=line, name=str(sname), env=senv, image=image or None, text=text)
        if srv is not None and built:
            srv.version = srv.version or parts.version
            srv.name = f"{sname} (build {built[0].name})"
        if srv is None:
            engine_like = any(t.startswith(("--lora", "--model", "--enable-lora")) for t in argv)
            pc.problems.extend(
                p for p in problems if image_engine(image)[0] or (engine_like and p["kind"] in _FOLLOW_KINDS)
            )
            continue
        srv.problems[:0] = problems
        vols = svc.get("volumes")
        for v in vols if isinstance(vols, list) else []:  # `volumes: true` is no list of mounts
            if isinstance(v, str):
                parts = v.split(":")
                if len(parts) >= 2:
                    srv.volumes.append((parts[0], parts[1]))
            elif isinstance(v, dict) and v.get("source") and v.get("target"):
                srv.volumes.append((str(v["source"]), str(v["target"])))
        pc.servers.append(srv)
    return pc


_K8S_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "CronJob"}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return spec if isinstance(spec, dict) else None
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    tmpl = (spec.get("template") or {}).get("spec") if isinstance(spec, dict) else None
    return tmpl if isinstance(tmpl, dict) else None


def parse_k8s(path: Path, docs: list[Any], text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "k8s", text=text)
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") not in _K8S_KINDS:
            continue
        pod = _pod_spec(doc)
        if not pod:
            continue
        vols = {}
        for v in pod.get("volumes") or []:
            if isinstance(v, dict) and v.get("name"):
                hp = (v.get("hostPath") or {}).get("path") if isinstance(v.get("hostPath"), dict) else None
                vols[v["name"]] = hp
        for c in pod.get("containers") or []:
            if not isinstance(c, dict):
                continue
            cname = str(c.get("name") or "container")
            line = line_of(text, f"name: {cname}")
            problems: list[dict[str, Any]] = []
            cenv = _env_of(c.get("env"), env, problems, text, k8s=True)
            argv = _argv_of(c.get("command"), problems, line) + _argv_of(c.get("args"), problems, line)
            argv = _interp_tokens(argv, {**env, **cenv}, problems, line, k8s=True)
            srv = from_argv(
                argv, source="k8s", line=line, name=cname, env=cenv, image=str(c.get("image") or "") or None, text=text
            )
            if srv is None:
                continue
            srv.problems[:0] = problems
            for m in c.get("volumeMounts") or []:
                if isinstance(m, dict) and m.get("mountPath"):
                    host = vols.get(m.get("name"))
                    if host:
                        srv.volumes.append((str(host), str(m["mountPath"])))
            pc.servers.append(srv)
    return pc


_VLLM_YAML_KEYS = {
    "model",
    "enable-lora",
    "max-lora-rank",
    "max-loras",
    "max-cpu-loras",
    "lora-modules",
    "served-model-name",
}


def vllm_yaml_opts(doc: dict[str, Any]) -> dict[str, list[Any]]:
    opts: dict[str, list[Any]] = {}
    for k, v in doc.items():
        key = str(k).replace("_", "-").lstrip("-")
        if isinstance(v, list):
            opts[key] = list(v)
        elif v is False or v is None:
            continue
        else:
            opts[key] = [v]
    return opts


def parse_vllm_yaml(path: Path, doc: dict[str, Any], text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "vllm-yaml", text=text)
    problems: list[dict[str, Any]] = []
    doc = _compose_interp(doc, env, problems, text)
    opts = vllm_yaml_opts(doc)
    srv = Server(engine="vllm", source="vllm-yaml", name=path.name, line=1)
    srv.problems.extend(problems)
    # A `vllm serve --config` file has no version field; teams pin it in a comment (`# engine: vllm==0.33.0`).
    pins = (_PIP_VLLM.search(ln) for ln in text.splitlines() if ln.lstrip().startswith("#"))
    srv.version = next((m.group(1) for m in pins if m), None)
    vllm_server(opts, [], srv, text)
    pc.servers.append(srv)
    return pc


def looks_like_vllm_yaml(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and bool({str(k).replace("_", "-") for k in doc} & _VLLM_YAML_KEYS)
        and not ("services" in doc or "kind" in doc or "apiVersion" in doc)
    )


def parse_config(path: Path, env: dict[str, str] | None = None, *, root: Path | None = None) -> ParsedConfig:
    """Parse one serving config file. Whole-file failures raise ReadError; partial ones are problems.

    root: the folder referenced files (a compose service's build Dockerfile) must stay inside."""
    from probes.serving import launchers, operators, router

    env = dict(env or {})
    low = path.name.lower()
    if low.endswith((".yaml", ".yml")):
        docs, text = load_yaml(path, multi=True)
        docs = [d for d in docs if d is not None]
        if any(isinstance(d, dict) and d.get("kind") in _K8S_KINDS for d in docs):
            pc = parse_k8s(path, docs, text, env)
            operators.add_operator_resources(pc, docs, text, env)
            return pc
        if any(operators.is_operator_resource(d) for d in docs):
            pc = ParsedConfig(path, "k8s", text=text)
            operators.add_operator_resources(pc, docs, text, env)
            return pc
        if len(docs) == 1 and isinstance(docs[0], dict) and isinstance(docs[0].get("services"), dict):
            return parse_compose(path, docs[0], text, env, root)
        if len(docs) == 1 and router.is_litellm_config(docs[0]):
            return router.parse_litellm(path, docs[0], text, env)
        if len(docs) == 1 and looks_like_vllm_yaml(docs[0]):
            return parse_vllm_yaml(path, docs[0], text, env)
        if len(docs) == 1 and isinstance(docs[0], dict):
            helm = operators.parse_helm_values(path, docs[0], text, env)
            if helm.servers or helm.problems:
                return helm
        pc = ParsedConfig(path, "yaml", text=text)
        pc.problems.append(
            _problem(
                "unknown_format", "YAML mentions a serving engine but is not compose, Kubernetes or a vLLM config", 1
            )
        )
        return pc
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ReadError(path, "not UTF-8 text", f"byte {exc.start}") from None
    if low == "dockerfile" or low.startswith("dockerfile.") or low.endswith(".dockerfile"):
        return parse_dockerfile(path, text, env)
    if launchers.is_makefile(path.name):
        return launchers.parse_makefile(path, text, env)
    if low.endswith(".py"):
        return launchers.parse_python(path, text, env)
    return parse_shell(path, text, env)


def apply_config_file(server: Server, path: Path, env: dict[str, str]) -> Server:
    """Merge a `vllm serve --config FILE` into a command-line server (the command line wins)."""
    docs, text = load_yaml(path)
    doc = docs[0] if docs else None
    if not isinstance(doc, dict):
        raise ReadError(path, "vLLM --config file is not a mapping")
    problems: list[dict[str, Any]] = []
    doc = _compose_interp(doc, env, problems, text)
    merged = {**vllm_yaml_opts(doc), **{k: v for k, v in server.options.items() if k != "config"}}
    out = Server(engine="vllm", source=server.source, name=server.name, line=server.line, version=server.version)
    out.volumes = list(server.volumes)
    out.problems = [p for p in server.problems if p["kind"] != "invalid_adapter_spec"] + problems
    pos = [server.model] if server.model and "model" not in merged else []
    vllm_server(merged, pos, out, "")
    for a in out.adapters:
        a.line = server.line
    out.config_file = server.config_file
    return out


__all__ = [
    "AdapterRef",
    "ParsedConfig",
    "Route",
    "Server",
    "apply_config_file",
    "load_yaml_text",
    "parse_config",
]
