"""Registry rules (REG###): ids, texts and tunables. Light: registered at start-up."""

from __future__ import annotations

from doctor.core.checks import CheckSet
from doctor.core.rules import rule

MALFORMED = rule(
    "REG001",
    "Registry entry is malformed",
    "error",
    [],
    """
    An entry in registry.yaml (schema peft-doctor/registry/1, docs/formats.md) lacks name/version/path or has
    a value outside its vocabulary (status canary|active|retired, quantization none|nf4|fp4|int8, integer
    version, 64-hex sha256). Rules that need the field skip the entry.
    """,
    "Fix the entry; `probes.registry.store.add_version` writes well-formed entries.",
)
DUPLICATE = rule(
    "REG002",
    "Adapter version registered twice",
    "error",
    ["routing_error", "version_drift"],
    "Two entries share name and version, so rollbacks and routes naming that version are ambiguous.",
    "Give the newer entry the next version number.",
)
TWO_ACTIVE = rule(
    "REG003",
    "Two active versions of one adapter",
    "error",
    ["version_drift"],
    "More than one version of the same adapter is `active`; which one serves traffic depends on the deployer.",
    "Retire all but one active version (`probes.registry.store.set_status(..., 'active')` does it).",
)
SHA_MISMATCH = rule(
    "REG004",
    "Adapter file differs from its registered sha256",
    "error",
    ["version_drift"],
    """
    adapter_model.safetensors at the registered (or served) path no longer hashes to the sha256 recorded at
    registration: the file was overwritten by another run, or a server cache holds a stale copy. What is
    served is not what was evaluated.
    """,
    "Register the new file as a new version (with its eval report), or restore the registered file.",
)
NO_ROLLBACK = rule(
    "REG005",
    "Active version has no rollback target",
    "warning",
    ["rollback_missing"],
    """
    An active version after the first has rollback_to = null. A first canary release has nothing to roll
    back to and is not reported.
    """,
    "Set rollback_to to the previously active version.",
)
ROLLBACK_MISSING = rule(
    "REG006",
    "Rollback target missing",
    "error",
    ["rollback_missing"],
    "rollback_to names a version that is not in the registry, or whose adapter folder is gone from disk.",
    "Point rollback_to at a version that exists, or restore that version's adapter folder.",
)
MISSING_ON_DISK = rule(
    "REG007",
    "Registered adapter missing on disk",
    "error",
    ["routing_error"],
    "A canary/active entry's path holds no adapter_model.safetensors (or does not exist).",
    "Restore the folder, fix the path (relative to registry.yaml's folder), or retire the entry.",
    parallel_min=256,
    workers=0,
)
NOT_REGISTERED = rule(
    "REG008",
    "Routed adapter not in the registry",
    "error",
    ["routing_error"],
    "A server routes an adapter name the registry does not know: nobody can tell which version it is, what it "
    "was evaluated on, or what to roll back to.",
    "Register the adapter (add_version) or remove the route.",
)
NOT_SERVED = rule(
    "REG009",
    "Registered canary/active adapter is not served",
    "warning",
    ["routing_error"],
    "An adapter the registry marks canary or active is routed by none of the rollout's serving configs, so "
    "requests for it fail (vLLM) or silently get the base model (TGI/LoRAX).",
    "Add the route (--lora-modules name=path) or retire the entry.",
)
TOO_MANY = rule(
    "REG010",
    "More adapters routed than the server keeps loaded",
    "warning",
    ["runtime_incompatible"],
    "A server routes more adapters than --max-loras (default 1) lets it hold on the GPU at once, so "
    "concurrent requests for different adapters wait for swaps (and max-cpu-loras bounds the CPU cache).",
    "Raise --max-loras (and --max-cpu-loras) to the number of adapters served concurrently.",
)
BASE_DISAGREES = rule(
    "REG011",
    "Registry base model disagrees with the adapter",
    "warning",
    ["base_mismatch"],
    "The entry's base_model is not the adapter_config.json base_model_name_or_path of the file it points to.",
    "Correct the registry entry, or check that the right adapter folder was registered.",
)

RULES = (
    MALFORMED,
    DUPLICATE,
    TWO_ACTIVE,
    SHA_MISMATCH,
    NO_ROLLBACK,
    ROLLBACK_MISSING,
    MISSING_ON_DISK,
    NOT_REGISTERED,
    NOT_SERVED,
    TOO_MANY,
    BASE_DISAGREES,
)

# One check per rule, registered beside its logic: probes/registry/integrity.py (artifact scope: one
# registry file), probes/registry/routing.py (rollout scope: the registries against the servers) and
# probes/registry/drift.py (REG004, both: registered files per registry, served files per rollout).
CHECKS = CheckSet("registry", RULES)
