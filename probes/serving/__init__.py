"""Serving-config probes (SRV rules): vLLM / TGI / LoRAX configs against the adapters they route.

Facts on each `serving_config` artifact: `format`, `servers` (normalized: engine, version, model,
served_names, enable_lora, max_lora_rank, max_loras, max_cpu_loras, lora_dtype, quantization, adapters
[{name, target, line, base_model_name}], routes, volumes, problems) and `compatibility` (matrix rows, see
probes.serving.matrix).
"""

from typing import Any

from doctor.core.probe import LazyProbe, lazy_attr
from probes.serving.formats import CLASSIFIERS
from probes.serving.rules import RULES

PROBES = [
    LazyProbe(
        "serving",
        {"serving_config"},
        "probes.serving.probe:ServingProbe",
        rollout_kinds={"serving_config", "registry", "manifest"},
    )
]


def __getattr__(name: str) -> Any:
    return lazy_attr(__name__, {"compatibility_matrix": "matrix", "render_matrix": "matrix"}, name)


__all__ = ["CLASSIFIERS", "PROBES", "RULES", "compatibility_matrix", "render_matrix"]
