"""Training-log probes: read the run's logs into one normalized series and diagnose instability."""

from probes.training.probe import PROBES
from probes.training.rules import RULES

__all__ = ["PROBES", "RULES"]
