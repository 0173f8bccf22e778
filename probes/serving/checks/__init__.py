"""The serving family's checks, one per SRV rule, registered on probes.serving.rules.CHECKS.

- configs.py (artifact scope): what a config says by itself — parse problems, rank caps, routes.
- paths.py: paths that cannot be followed or verified (both scopes), adapters not found.
- compat.py (rollout, flag COMPAT): can this engine load this adapter as PEFT would — the matrix verdict.
- servers.py: server × base model (architecture, quantization).
- silent.py: routes that load and answer like the base model.
- lineage.py: the adapter's training tokenizer / chat template / EOS against the served ones.
- routes.py: the routing layer (LiteLLM) against what the servers serve.
probes.serving.probe imports every module here (registration happens on import).
"""
