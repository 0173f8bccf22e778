"""Training-log probes: read the run's logs into one normalized series and diagnose instability."""

from doctor.core.probe import LazyProbe
from probes.training.formats import CLASSIFIERS
from probes.training.rules import CHECKS, RULES

PROBES = [
    LazyProbe("training", {"training_log"}, "probes.training.probe:TrainingLogProbe"),
    LazyProbe(
        "training-config",
        {"training_config"},
        "probes.training.probe:TrainingConfigProbe",
        rollout_kinds={"training_config", "manifest", "training_log"},  # [recipe]; CFG009 for a log without one
    ),
]

__all__ = ["CHECKS", "CLASSIFIERS", "PROBES", "RULES"]
