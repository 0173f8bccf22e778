"""What PEFT itself knows, as data and pure functions (no torch): adapter_config.json fields and the oldest
PEFT that reads them (config), each tuner's tensors (tuners), base-model structure per model_type (arch),
which base modules a config adapts by peft's own rules (matching), and where the base model is (basemodel).
Shared by the adapter and serving families."""
