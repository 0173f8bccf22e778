"""The routing layer in front of the engines: a LiteLLM proxy config (`model_list`).

Each entry maps the name clients send (`model_name`) to `litellm_params.model`, a provider prefix plus the
name the backend is asked for (`hosted_vllm/support-bot`, `openai/support-bot`); `api_base` says which
server. Doctor checks that backend name against what the rollout's servers actually serve (base names
and adapter routes): see the route rules (SRV025, SRV026).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving.readers.common import interp_tree
from probes.serving.server import ParsedConfig, Route, problem

# Providers whose model string is "<provider>/<name the backend serves>" for an OpenAI-compatible backend.
PROVIDERS = ("hosted_vllm", "openai", "vllm", "text-completion-openai", "huggingface", "sagemaker", "lorax")


def is_litellm_config(doc: Any) -> bool:
    ml = doc.get("model_list") if isinstance(doc, dict) else None
    return isinstance(ml, list) and any(isinstance(e, dict) and "litellm_params" in e for e in ml)


def split_model(model: str) -> tuple[str, str]:
    head, sep, rest = model.partition("/")
    if sep and head in PROVIDERS:
        return head, rest
    return "", model


def parse_litellm(path: Path, doc: dict[str, Any], text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "litellm", text=text)
    for i, entry in enumerate(doc.get("model_list") or []):
        if not isinstance(entry, dict):
            pc.problems.append(problem("unparseable", f"model_list item {i} is not a mapping", 1))
            continue
        problems: list[dict[str, Any]] = []
        entry = interp_tree(entry, env, [], text)
        name = entry.get("model_name")
        params = entry.get("litellm_params")
        line = line_of(text, f"model_name: {name}", f'model_name: "{name}"') if name else 1
        if not isinstance(name, str) or not isinstance(params, dict) or not isinstance(params.get("model"), str):
            pc.problems.append(
                problem("invalid_adapter_spec", f"model_list item {i} needs model_name and litellm_params.model", line)
            )
            continue
        provider, model = split_model(params["model"])
        base = params.get("api_base")
        if isinstance(base, str) and base.startswith("os.environ/"):
            base = None  # read from the environment at run time
        pc.problems.extend(problems)
        pc.routes.append(Route(name, model, provider, base if isinstance(base, str) else None, line))
    return pc
