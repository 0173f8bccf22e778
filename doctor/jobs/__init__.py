"""Corrective jobs (retrain, re-eval). The training stack is imported only by the worker modules
(`training`, `evaluation`, `data`), which run in a subprocess; this package import stays light."""
