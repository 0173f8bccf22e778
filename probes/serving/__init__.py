"""Serving-config probes (SRV rules): vLLM / TGI / LoRAX configs against the adapters they route.

Facts on each `serving_config` artifact: `format`, `servers` (normalized: engine, version, model,
served_names, enable_lora, max_lora_rank, max_loras, max_cpu_loras, lora_dtype, quantization, adapters
[{name, target, line, base_model_name}], routes, volumes, problems) and `compatibility` (matrix rows, see
probes.serving.matrix; rendered by doctor.render.matrix). The checks, one per rule, are in
probes/serving/checks/ (registered on CHECKS when the probe is first used).
"""

from doctor.core.probe import LazyProbe
from probes.serving.formats import CLASSIFIERS
from probes.serving.rules import CHECKS, RULES

PROBES = [
    LazyProbe(
        "serving",
        {"serving_config"},
        "probes.serving.probe:ServingProbe",
        rollout_kinds={"serving_config", "registry", "manifest"},
    )
]

__all__ = ["CHECKS", "CLASSIFIERS", "PROBES", "RULES"]
