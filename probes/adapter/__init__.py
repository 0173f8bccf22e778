"""Adapter checkpoint probes: structure, weight forensics and base-model compatibility, at disk speed.

Reads an adapter folder (adapter_config.json + adapter_model.safetensors; a PEFT adapter saved under
a non-default name sits in a subfolder `NAME/` and is discovered there) with numpy only: the
safetensors header is parsed and validated by hand before any data is read, then each tensor is
converted to float32 from a memory map, reduced to r x r Gram matrices and released (see
stats.py for the math; effective rank = exp(entropy) AND the 90 %-energy rank, the latter drives
ADP009). Pickles (adapter_model.bin/.pt) are never opened.

sha256: streaming it costs about as much as the whole numeric scan (~1 GB/s hashing here vs the scan
at disk speed), so it is computed only when the rollout has a registry (a registry artifact, or
[serving].registry in rollout.toml), when the file is ≤ 64 MiB, or when settings say
`[adapter] sha256 = "always"`; otherwise facts["sha256"] is None and callers use `sha256_file(path)`.

Facts (artifact.facts; `adapter_facts(path)` returns the same dict) — stable names for other probes:

    format              "safetensors" | "pickle" | "none"
    adapter_name        the folder name (PEFT's adapter name when saved in a subfolder)
    weights_file        adapter_model.safetensors | adapter_model.bin | None
    pickle_files        pickles present (never loaded)
    readable            False when ADP001 fired (header/file/config unreadable)
    peft_type, peft_version, task_type, min_peft_version (oldest PEFT that knows every field used)
    base_model_name_or_path
    r, alpha, use_rslora, scale (alpha/r or alpha/√r), rank_pattern {pattern: r}, alpha_pattern
    max_rank            max(r, rank_pattern values, lora_A rows) — what vLLM compares to --max-lora-rank
    weight_ranks        sorted distinct ranks found in the tensors
    use_dora, has_magnitudes, bias ("none"|"all"|"lora_only"), lora_bias, modules_to_save,
    init_lora_weights, layers_to_transform, target_modules (as in the config: list or regex)
    targets             sorted module names that actually have LoRA weights (q_proj, …)
    lora_modules        number of adapted modules; layers_with_weights: sorted layer indices
    key_suffixes        e.g. [".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector", ".weight"]
    saved_other_keys    non-LoRA keys (modules_to_save copies, full embeddings, biases), first 50
    tensor_dims         {target: {"in": d_in, "out": d_out}}
    vocab_dims          {"lora_embedding_A": vocab, "<full embedding key>": rows}
    dtype (by bytes), dtypes {dtype: bytes}, size_bytes, sha256 (hex or None), tensor_count,
    trainable_params    total elements saved
    non_finite_tensors, non_finite_values
    layers              [{module, layer, path, r, update_norm, effective_rank, rank90}, …]
    base                (when a base config.json is found) model_type, architecture, hidden, …, found_by
    scan_seconds        {header, tensors, sha256, total}

Base structure and PEFT's module matching live in the shared kit (probes/common/peft/, also used by serving's
silent-no-op checks):

    architecture_for(config_json) -> Architecture | None   (peft/arch.py: declarative table per model_type;
        Architecture.modules {full path: Spec(kind, in_features, out_features, layer, experts)},
        .locate(saved_path) -> Spec, .linear_paths() = what all-linear expands to)
    match_targets(adapter_config, arch) -> Matching          (peft/matching.py: peft's own rules;
        Matching.targets {base path: Target(spec, saved_path, r, alpha, scale)}, .by_saved_path,
        .modules_to_save, .unmatched_entries, .unsupported)
    compat.resolve(scan.modules, config, arch)               (saved tensors → the base module they sit on)

Layout: rules.py (ADP rules, their `tuner:<trait>` flags, CHECKS), checks/ (one registered check per rule:
files, config, weights, scaling, base), applicability.py (which checks a tuner gets, from the flags),
base_view.py (the base found and resolved once per scan), scan.py (the one pass over the files), probe.py
(prepare the scan, run CHECKS, facts), formats.py (which folders are adapters and base models).
"""

from typing import Any

from doctor.core.probe import LazyProbe, lazy_attr
from probes.adapter.formats import CLASSIFIERS
from probes.adapter.rules import CHECKS, RULES

PROBES = [LazyProbe("adapter", {"adapter"}, "probes.adapter.probe:AdapterProbe")]

# The family's own API, imported on first use (numpy stays off the start-up path). The shared pieces it is
# built on (safetensors_io, peft.arch, peft.matching) are imported from probes.common directly.
_LAZY = {"AdapterProbe": "probe", "adapter_facts": "probe", "scan_adapter": "scan"}


def __getattr__(name: str) -> Any:
    return lazy_attr(__name__, _LAZY, name)


__all__ = ["CHECKS", "CLASSIFIERS", "PROBES", "RULES", *_LAZY]
