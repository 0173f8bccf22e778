"""Corrective jobs (retrain, re-eval). The training stack is imported only by the worker modules
(`worker`, `training`, `evaluation`, `data`, `lab`, `parity`), which run in a subprocess; this package import
stays light."""

# `doctor fix` defaults, here so the CLI can show them without importing the job machinery.
DEFAULT_ATTEMPTS = 3
DEFAULT_BUDGET_MIN = 30.0
