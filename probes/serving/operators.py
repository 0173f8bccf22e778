"""Servers declared through Kubernetes operators and Helm values rather than a pod's command line.

- KubeAI `Model` (apiVersion kubeai.org/v1): `spec.url` (hf://, s3://, pvc://), `spec.engine`,
  `spec.adapters: [{name, url}]`, `spec.args`, `spec.env`. KubeAI serves adapters only with
  `engine: VLLM` and hf:// or s3:// URLs; adapter names must match ^[a-z0-9-]+$ (≤ 63 chars).
- Helm values of the vLLM production stack: `servingEngineSpec.modelSpec: [{name, repository, tag,
  modelURL, enableLoRA, vllmConfig: {maxLoras, extraArgs}}]`, which its chart turns into
  `vllm serve MODEL [--enable-lora] [--max_loras N] EXTRA…`.
- Other Helm values: any mapping whose `image` (a string or {repository, tag}) is an engine image, with
  its `command` / `args` / `extraArgs` lists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving import config as C

_KUBEAI_NAME = re.compile(r"^[a-z0-9-]{1,63}$")


def is_operator_resource(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "Model" and str(doc.get("apiVersion", "")).startswith("kubeai.")


def _strip_scheme(url: str) -> str:
    for scheme in ("hf://", "ollama://"):
        if url.startswith(scheme):
            return url[len(scheme) :]
    if url.startswith("pvc://"):
        return "/" + url[len("pvc://") :].split("/", 1)[-1]  # a path inside the volume, i.e. the container
    return url


def add_operator_resources(pc: C.ParsedConfig, docs: list[Any], text: str, env: dict[str, str]) -> None:
    for doc in docs:
        if not is_operator_resource(doc):
            continue
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
        name = str(meta.get("name") or "model")
        line = line_of(text, f"name: {name}")
        engine = str(spec.get("engine") or "")
        adapters = spec.get("adapters") or []
        if engine.upper() != "VLLM":
            if adapters:
                pc.problems.append(
                    C._problem(
                        "invalid_adapter_spec",
                        f"KubeAI Model {name}: adapters are only served with engine VLLM (engine is {engine!r}); "
                        "requests for them fail",
                        line,
                    )
                )
            continue
        problems: list[dict[str, Any]] = []
        menv = C._env_of(spec.get("env"), env, problems, text)
        args = C._argv_of(spec.get("args"), problems, line)
        args = C._interp_tokens(args, {**env, **menv}, problems, line)
        url = str(spec.get("url") or "")
        srv = C.from_argv(["vllm", "serve", _strip_scheme(url), *args], source="kubeai", line=line, name=name, env=menv)
        assert srv is not None
        srv.served_names = list(dict.fromkeys([name, *srv.served_names]))
        if adapters:
            srv.enable_lora = True  # KubeAI adds --enable-lora when the Model lists adapters
        for a in adapters if isinstance(adapters, list) else []:
            if not isinstance(a, dict):
                continue
            aname, aurl = str(a.get("name") or a.get("id") or ""), str(a.get("url") or "")
            aline = line_of(text, aurl) if aurl else line
            if not _KUBEAI_NAME.match(aname):
                problems.append(
                    C._problem("invalid_adapter_spec", f"KubeAI adapter name {aname!r} must match ^[a-z0-9-]+$", aline)
                )
                continue
            if not aurl.startswith(("hf://", "s3://")):
                problems.append(
                    C._problem(
                        "invalid_adapter_spec", f"KubeAI adapter {aname}: url {aurl!r} is not hf:// or s3://", aline
                    )
                )
                continue
            srv.adapters.append(C.AdapterRef(aname, _strip_scheme(aurl), aline, None, aurl))
        srv.problems[:0] = problems
        pc.servers.append(srv)


# ------------------------------------------------------------------ Helm values


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


def _production_stack(pc: C.ParsedConfig, doc: dict[str, Any], text: str, env: dict[str, str]) -> None:
    spec = doc.get("servingEngineSpec")
    models = spec.get("modelSpec") if isinstance(spec, dict) else None
    for m in models if isinstance(models, list) else []:
        if not isinstance(m, dict):
            continue
        name = str(m.get("name") or "model")
        line = line_of(text, f"name: {name}", f'name: "{name}"')
        problems: list[dict[str, Any]] = []
        m = C._compose_interp(m, env, problems, text)
        image = f"{m.get('repository') or 'vllm/vllm-openai'}:{m.get('tag') or 'latest'}"
        argv = ["vllm", "serve", str(m.get("modelURL") or "")]
        if m.get("enableLoRA"):
            argv.append("--enable-lora")
        vcfg = m.get("vllmConfig") if isinstance(m.get("vllmConfig"), dict) else {}
        if "maxLoras" in vcfg:
            argv += ["--max-loras", str(vcfg["maxLoras"])]
        argv += [str(x) for x in vcfg.get("extraArgs") or []]
        srv = C.from_argv(argv, source="helm", line=line, name=name, env={}, image=image)
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


def parse_helm_values(path: Path, doc: dict[str, Any], text: str, env: dict[str, str]) -> C.ParsedConfig:
    pc = C.ParsedConfig(path, "helm", text=text)
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
                argv += C._argv_of(n.get(key), problems, 1)
        if not argv and not C.image_engine(image)[0]:
            continue
        line = line_of(text, *(a for a in argv[:1] if a), "image:")
        srv = C.from_argv(argv, source="helm", line=line, name=str(n.get("name") or path.name), env={}, image=image)
        if srv is None:
            continue
        srv.problems[:0] = problems
        pc.servers.append(srv)
    return pc
