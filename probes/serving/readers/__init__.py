"""Serving config readers, one module per source format; `parse_config` picks one by name and content.

- shell.py: shell scripts (and the command scanner Makefile recipes and Python shell strings use)
- makefile.py, python.py: launch programs (Makefile recipes; Python launchers read with `ast`, never run)
- dockerfile.py, compose.py: Dockerfiles; docker-compose services (and the Dockerfile a service builds)
- k8s.py, kubeai.py, helm.py: Kubernetes workloads; KubeAI `Model` resources; Helm values
- vllm_yaml.py: `vllm serve --config` YAML (and merging it into the command line that names it)
- litellm.py: a LiteLLM proxy's `model_list` (routes, no servers)
- argv.py: the engines' argument grammar every reader ends in; common.py: what several readers share
Whole-file failures raise ReadError; partial ones are problems on the result (probes.serving.server).
"""

from __future__ import annotations

from pathlib import Path

from doctor.core.probe import ReadError
from probes.common.yamlsafe import load_yaml
from probes.serving.readers import compose, dockerfile, helm, k8s, kubeai, litellm, makefile, python, shell, vllm_yaml
from probes.serving.readers.vllm_yaml import apply_config_file
from probes.serving.server import ParsedConfig, problem

__all__ = ["apply_config_file", "parse_config"]


def parse_config(path: Path, env: dict[str, str] | None = None, *, root: Path | None = None) -> ParsedConfig:
    """Parse one serving config file. Whole-file failures raise ReadError; partial ones are problems.

    root: the folder referenced files (a compose service's build Dockerfile) must stay inside."""
    env = dict(env or {})
    low = path.name.lower()
    if low.endswith((".yaml", ".yml")):
        docs, text = load_yaml(path, multi=True)
        docs = [d for d in docs if d is not None]
        if any(isinstance(d, dict) and d.get("kind") in k8s.K8S_KINDS for d in docs):
            pc = k8s.parse_k8s(path, docs, text, env)
            kubeai.add_operator_resources(pc, docs, text, env)
            return pc
        if any(kubeai.is_operator_resource(d) for d in docs):
            pc = ParsedConfig(path, "k8s", text=text)
            kubeai.add_operator_resources(pc, docs, text, env)
            return pc
        if len(docs) == 1 and isinstance(docs[0], dict) and isinstance(docs[0].get("services"), dict):
            return compose.parse_compose(path, docs[0], text, env, root)
        if len(docs) == 1 and litellm.is_litellm_config(docs[0]):
            return litellm.parse_litellm(path, docs[0], text, env)
        if len(docs) == 1 and vllm_yaml.looks_like_vllm_yaml(docs[0]):
            return vllm_yaml.parse_vllm_yaml(path, docs[0], text, env)
        if len(docs) == 1 and isinstance(docs[0], dict):
            values = helm.parse_helm_values(path, docs[0], text, env)
            if values.servers or values.problems:
                return values
        pc = ParsedConfig(path, "yaml", text=text)
        pc.problems.append(
            problem(
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
        return dockerfile.parse_dockerfile(path, text, env)
    if makefile.is_makefile(path.name):
        return makefile.parse_makefile(path, text, env)
    if low.endswith(".py"):
        return python.parse_python(path, text, env)
    return shell.parse_shell(path, text, env)
