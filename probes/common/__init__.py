"""The shared probe kit: what more than one probe family needs, so families never import each other.

Depends only on doctor.core. Capped YAML loading (yamlsafe), the path policy for "outside the target"
(paths), and the pieces listed in docs/ARCHITECTURE.md.
"""
