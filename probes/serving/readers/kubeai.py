"""KubeAI `Model` resources (apiVersion kubeai.org/v1): `spec.url` (hf://, s3://, pvc://), `spec.engine`,
`spec.adapters: [{name, url}]`, `spec.args`, `spec.env`. KubeAI serves adapters only with `engine: VLLM` and
hf:// or s3:// URLs; adapter names must match ^[a-z0-9-]+$ (≤ 63 chars).
"""

from __future__ import annotations

import re
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving.readers.argv import from_argv
from probes.serving.readers.common import argv_of, env_of, interp_tokens
from probes.serving.server import AdapterRef, ParsedConfig, problem

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


def add_operator_resources(pc: ParsedConfig, docs: list[Any], text: str, env: dict[str, str]) -> None:
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
                    problem(
                        "invalid_adapter_spec",
                        f"KubeAI Model {name}: adapters are only served with engine VLLM (engine is {engine!r}); "
                        "requests for them fail",
                        line,
                    )
                )
            continue
        problems: list[dict[str, Any]] = []
        menv = env_of(spec.get("env"), env, problems, text)
        args = argv_of(spec.get("args"), problems, line)
        args = interp_tokens(args, {**env, **menv}, problems, line)
        url = str(spec.get("url") or "")
        srv = from_argv(["vllm", "serve", _strip_scheme(url), *args], source="kubeai", line=line, name=name, env=menv)
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
                    problem("invalid_adapter_spec", f"KubeAI adapter name {aname!r} must match ^[a-z0-9-]+$", aline)
                )
                continue
            if not aurl.startswith(("hf://", "s3://")):
                problems.append(
                    problem(
                        "invalid_adapter_spec", f"KubeAI adapter {aname}: url {aurl!r} is not hf:// or s3://", aline
                    )
                )
                continue
            srv.adapters.append(AdapterRef(aname, _strip_scheme(aurl), aline, None, aurl))
        srv.problems[:0] = problems
        pc.servers.append(srv)
