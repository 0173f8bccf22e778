"""The adapter family's checks, one per ADP rule, registered on probes.adapter.rules.CHECKS on import.

Every check takes the prepared scan (probes/adapter/scan.py `Scan`, with `base_view` set by the probe) and
the probe context. The order below is the order they run in (the order the probe used to raise them).
"""

from probes.adapter.checks import base, config, files, scaling, weights

__all__ = ["base", "config", "files", "scaling", "weights"]
