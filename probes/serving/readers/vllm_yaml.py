"""`vllm serve --config FILE` YAML: options as keys (`max-lora-rank` or `max_lora_rank`), a version pin
in a comment; and merging such a file into a command-line server that names it (the command line wins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from probes.common.yamlsafe import load_yaml
from probes.serving.readers.argv import PIP_VLLM, vllm_server
from probes.serving.readers.common import interp_tree
from probes.serving.server import ParsedConfig, Server

_VLLM_YAML_KEYS = frozenset(
    {
        "model",
        "enable-lora",
        "max-lora-rank",
        "max-loras",
        "max-cpu-loras",
        "lora-modules",
        "served-model-name",
    }
)


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
    doc = interp_tree(doc, env, problems, text)
    opts = vllm_yaml_opts(doc)
    srv = Server(engine="vllm", source="vllm-yaml", name=path.name, line=1)
    srv.problems.extend(problems)
    # A `vllm serve --config` file has no version field; teams pin it in a comment (`# engine: vllm==0.33.0`).
    pins = (PIP_VLLM.search(ln) for ln in text.splitlines() if ln.lstrip().startswith("#"))
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


def apply_config_file(server: Server, path: Path, env: dict[str, str]) -> Server:
    """Merge a `vllm serve --config FILE` into a command-line server (the command line wins)."""
    docs, text = load_yaml(path)
    doc = docs[0] if docs else None
    if not isinstance(doc, dict):
        raise ReadError(path, "vLLM --config file is not a mapping")
    problems: list[dict[str, Any]] = []
    doc = interp_tree(doc, env, problems, text)
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
