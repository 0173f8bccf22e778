"""peft-doctor: diagnostics for LoRA and QLoRA rollouts."""

__version__ = "0.1.0"
