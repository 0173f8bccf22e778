"""Engine command lines → `Server`: the argument grammar of vLLM, SGLang, TGI and LoRAX.

`from_argv` finds the launcher in an argv (`vllm serve`, `python -m vllm.entrypoints.openai.api_server`,
`sglang.launch_server`, `text-generation-launcher`, `lorax-launcher`, `docker run IMAGE …`, or an engine
image's default entrypoint) and normalizes its options (defaults the engine applies included, and
`explicit` naming what the config wrote).
"""

from __future__ import annotations

import re
from typing import Any

from doctor.core.safeio import loads_json
from probes.common.yamlsafe import line_of
from probes.serving.server import AdapterRef, Server, problem

VLLM_DEFAULTS = {"max_lora_rank": 16, "max_loras": 1}
SGLANG_DEFAULTS = {"max_loras": 8}  # --max-loras-per-batch; --max-lora-rank is inferred from the adapters
# vLLM options that take no value (anything else followed by a non-flag token takes that token).
_VLLM_BOOL = frozenset(
    {
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
        "skip-tokenizer-init",
        "disable-sliding-window",
        "enable-expert-parallel",
        "enable-sleep-mode",
        "async-scheduling",
        "no-enable-lora",
    }
)
_VLLM_MULTI = frozenset({"lora-modules", "allowed-origins", "middleware", "allowed-methods", "allowed-headers"})
_SGLANG_BOOL = frozenset(
    {"enable-lora", "trust-remote-code", "disable-radix-cache", "enable-torch-compile", "skip-server-warmup"}
)
_SGLANG_MULTI = frozenset({"lora-paths", "lora-target-modules"})
_TGI_BOOL = frozenset(
    {"trust-remote-code", "disable-custom-kernels", "sharded", "json-output", "disable-grammar-support"}
)
_IMAGE = re.compile(
    r"(?P<repo>(?:[\w.-]+(?::\d+)?/)?(?:vllm/vllm-openai|huggingface/text-generation-inference|"
    r"predibase/lorax|lmsysorg/sglang))(?::(?P<tag>[\w.-]+))?"
)
PIP_VLLM = re.compile(r"\bvllm==(\d+(?:\.\d+)*)")


def _int(server: Server, key: str, value: Any, line: int) -> int | None:
    if isinstance(value, bool):
        value = None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        if "$" in str(value):
            return None  # an unresolved variable, reported as such (SRV002)
        server.problems.append(problem("unparseable", f"{key} = {value!r} is not an integer", line))
        return None


def parse_opts(
    tokens: list[str], bools: frozenset[str], multi: frozenset[str]
) -> tuple[dict[str, list[Any]], list[str]]:
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


def last(opts: dict[str, list[Any]], *keys: str) -> Any:
    for k in keys:
        if opts.get(k):
            return opts[k][-1]
    return None


def _parse_lora_module(server: Server, item: Any, line: int, text: str) -> None:
    """One `--lora-modules` value: `name=path` or JSON {"name","path","base_model_name"}."""
    if isinstance(item, dict):
        server.problems.append(
            problem(
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
            server.problems.append(problem("invalid_adapter_spec", f"lora-modules item {s!r} is not valid JSON", ln))
            return
        if not isinstance(obj, dict) or not obj.get("name") or not obj.get("path"):
            server.problems.append(problem("invalid_adapter_spec", f"lora-modules JSON {s!r} needs name and path", ln))
            return
        server.adapters.append(AdapterRef(str(obj["name"]), str(obj["path"]), ln, obj.get("base_model_name"), s))
        return
    name, eq, path = s.partition("=")
    if not eq or not name or not path:
        server.problems.append(problem("invalid_adapter_spec", f"lora-modules item {s!r} is not name=path", ln))
        return
    server.adapters.append(AdapterRef(name.strip(), path.strip(), ln, None, s))


def vllm_server(opts: dict[str, list[Any]], pos: list[str], server: Server, text: str = "") -> Server:
    line = server.line
    server.options = {k: list(v) for k, v in opts.items()}
    if pos:
        server.model = str(pos[0])
    model = last(opts, "model")
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
        v = last(opts, key)
        if v is not None:
            server.explicit.append(attr)
            setattr(server, attr, _int(server, key, v, line_of(text, key) if text else line))
    if server.max_lora_rank is None and "max_lora_rank" not in server.explicit:
        server.max_lora_rank = VLLM_DEFAULTS["max_lora_rank"]
    if server.max_loras is None and "max_loras" not in server.explicit:
        server.max_loras = VLLM_DEFAULTS["max_loras"]
    if server.max_cpu_loras is None and "max_cpu_loras" not in server.explicit:
        server.max_cpu_loras = server.max_loras
    dt = last(opts, "lora-dtype")
    server.lora_dtype = str(dt) if dt is not None else "auto"
    q = last(opts, "quantization", "q")
    server.quantization = str(q) if q is not None and q is not True else None
    for item in opts.get("lora-modules", []):
        _parse_lora_module(server, item, line, text)
    cfg = last(opts, "config")
    if isinstance(cfg, str):
        server.config_file = cfg
    tok = last(opts, "tokenizer")
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
            server.problems.append(problem("invalid_adapter_spec", f"lora-paths item {s!r} is not valid JSON", line))
            return
        if not isinstance(obj, dict) or not obj.get("lora_name") or not obj.get("lora_path"):
            server.problems.append(
                problem("invalid_adapter_spec", f"lora-paths JSON {s!r} needs lora_name and lora_path", line)
            )
            return
        server.adapters.append(AdapterRef(str(obj["lora_name"]), str(obj["lora_path"]), line, None, s))
        return
    name, eq, path = s.partition("=")
    if eq and (not name or not path):
        server.problems.append(problem("invalid_adapter_spec", f"lora-paths item {s!r} is not NAME=PATH", line))
        return
    if not eq:
        name, path = s, s  # a bare path is served under its own path as the name
    server.adapters.append(AdapterRef(name.strip(), path.strip(), line, None, s))


def sglang_server(opts: dict[str, list[Any]], server: Server) -> Server:
    """`python -m sglang.launch_server` options (or ServerArgs keywords) → Server."""
    server.options = {k: list(v) for k, v in opts.items()}
    model = last(opts, "model-path", "model")
    server.model = str(model) if model is not None and model is not True else None
    names = [str(x) for x in opts.get("served-model-name", []) if x is not True]
    server.served_names = names
    for item in opts.get("lora-paths", []):
        _parse_sglang_lora(server, item, server.line)
    flag = [v for v in opts.get("enable-lora", [])]
    server.enable_lora = bool(server.adapters) or any(v is True or str(v).lower() in ("true", "1") for v in flag)
    for key, attr in (("max-loras-per-batch", "max_loras"), ("max-lora-rank", "max_lora_rank")):
        v = last(opts, key)
        if v is not None:
            server.explicit.append(attr)
            setattr(server, attr, _int(server, key, v, server.line))
    if server.max_loras is None and "max_loras" not in server.explicit:
        server.max_loras = SGLANG_DEFAULTS["max_loras"]
    v = last(opts, "max-loaded-loras")
    if v is not None:
        server.explicit.append("max_cpu_loras")
        server.max_cpu_loras = _int(server, "max-loaded-loras", v, server.line)
    q = last(opts, "quantization")
    server.quantization = str(q) if q is not None and q is not True else None
    tok = last(opts, "tokenizer-path")
    server.tokenizer = str(tok) if isinstance(tok, str) else None
    server.lora_target_modules = [str(m) for v in opts.get("lora-target-modules", []) for m in str(v).split(",") if m]
    return server


def tgi_server(opts: dict[str, list[Any]], env: dict[str, str], server: Server, text: str = "") -> Server:
    server.model = last(opts, "model-id") or env.get("MODEL_ID")
    tok = last(opts, "tokenizer-config-path")
    server.tokenizer = str(tok) if isinstance(tok, str) else None
    q = last(opts, "quantize") or env.get("QUANTIZE")
    server.quantization = str(q) if q else None
    spec = last(opts, "lora-adapters") or env.get("LORA_ADAPTERS")
    server.enable_lora = bool(spec)
    if server.engine == "lorax":
        v = last(opts, "max-active-adapters") or env.get("MAX_ACTIVE_ADAPTERS")
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
                    problem("invalid_adapter_spec", f"LORA_ADAPTERS entry {item!r} has more than one '=' or '@'", ln)
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
    opts, _ = parse_opts(args, _TGI_BOOL, frozenset())
    return tgi_server(opts, env, server, text)


def _docker_run_env(opts: list[str], server: Server, env: dict[str, str]) -> None:
    for i, t in enumerate(opts):
        if t in ("-v", "--volume") and i + 1 < len(opts):
            host, _, rest = opts[i + 1].partition(":")
            server.volumes.append((host, rest.split(":")[0]))
