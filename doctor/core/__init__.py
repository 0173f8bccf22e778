"""The lowest floor: what every other part of doctor is built on (no probe family, no application code).

model (Finding, Artifact, Report), rules (Rule, registry, DOC rules), checks (one registered check per
rule), probe (Probe, ProbeContext, Rollout, ReadError), session (per-scan state), manifest (rollout.toml),
settings ([tool.doctor] / doctor.toml), safeio (capped, depth-guarded reads), discovery (the walk that asks
each family's classifier).
"""
