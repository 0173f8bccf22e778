"""Helm values. The vLLM production stack's `servingEngineSpec.modelSpec: [{name, repository, tag,
modelURL, enableLoRA, vllmConfig: {maxLoras, extraArgs}}]`, which its chart turns into
`vllm serve MODEL [--enable-lora] [--max_loras N] EXTRA…`; and any other mapping whose `image` (a string or
{repository, tag}) is an engine image, with its `command` / `args` / `extraArgs` lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving.readers.argv import from_argv, image_engine
from probes.serving.readers.common import argv_of, interp_tree
from probes.serving.server import ParsedConfig


def _image_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        repo = value.get("repository") or value.get("repo") or ""
        if value.get("registry"):
            repo = f"{value['registry']}/{repo}"
        tag = value.get("tag")
        return f"{repo}:{tag}" if repo and tag else str(repo)
    return ""


def _production_stack(pc: ParsedConfig, doc: dict[str, Any], text: str, env: dict[str, str]) -> None:
    spec = doc.get("servingEngineSpec")
    models = spec.get("modelSpec") if isinstance(spec, dict) else None
    for m in models if isinstance(models, list) else []:
        if not isinstance(m, dict):
            continue
        name = str(m.get("name") or "model")
        line = line_of(text, f"name: {name}", f'name: "{name}"')
        problems: list[dict[str, Any]] = []
        m = interp_tree(m, env, problems, text)
        image = f"{m.get('repository') or 'vllm/vllm-openai'}:{m.get('tag') or 'latest'}"
        argv = ["vllm", "serve", str(m.get("modelURL") or "")]
        if m.get("enableLoRA"):
            argv.append("--enable-lora")
        vcfg = m.get("vllmConfig") if isinstance(m.get("vllmConfig"), dict) else {}
        if "maxLoras" in vcfg:
            argv += ["--max-loras", str(vcfg["maxLoras"])]
        argv += [str(x) for x in vcfg.get("extraArgs") or []]
        srv = from_argv(argv, source="helm", line=line, name=name, env={}, image=image)
        if srv is not None:
            srv.problems[:0] = problems
            pc.servers.append(srv)


def _walk(node: Any, out: list[dict[str, Any]], depth: int = 0) -> None:
    if depth > 12:
        return
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _walk(v, out, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _walk(v, out, depth + 1)


def parse_helm_values(path: Path, doc: dict[str, Any], text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "helm", text=text)
    if isinstance(doc.get("servingEngineSpec"), dict):
        _production_stack(pc, doc, text, env)
        return pc
    nodes: list[dict[str, Any]] = []
    _walk(doc, nodes)
    for n in nodes:
        image = _image_of(n.get("image"))
        argv: list[str] = []
        problems: list[dict[str, Any]] = []
        for key in ("command", "args", "extraArgs"):
            if isinstance(n.get(key), list | str):
                argv += argv_of(n.get(key), problems, 1)
        if not argv and not image_engine(image)[0]:
            continue
        line = line_of(text, *(a for a in argv[:1] if a), "image:")
        srv = from_argv(argv, source="helm", line=line, name=str(n.get("name") or path.name), env={}, image=image)
        if srv is None:
            continue
        srv.problems[:0] = problems
        pc.servers.append(srv)
    return pc
