"""Serving-config probes (SRV rules): vLLM / TGI / LoRAX configs against the adapters they route.

Facts on each `serving_config` artifact: `format`, `servers` (normalized: engine, version, model,
served_names, enable_lora, max_lora_rank, max_loras, max_cpu_loras, lora_dtype, quantization, adapters
[{name, target, line, base_model_name}], routes, volumes, problems) and `compatibility` (matrix rows, see
probes.serving.matrix).
"""

from probes.serving.matrix import compatibility_matrix, render_matrix
from probes.serving.probe import ServingProbe
from probes.serving.rules import RULES

PROBES = [ServingProbe()]

__all__ = ["PROBES", "RULES", "compatibility_matrix", "render_matrix"]
