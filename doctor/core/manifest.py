"""The rollout manifest, `rollout.toml`: what a rollout is made of and how its adapter was trained.

Paths are relative to the manifest's folder. Every table is optional except [rollout].

```toml
[rollout]
name = "diverged"
method = "lora"                       # lora | qlora
base_model = "../../models/tiny-base"  # folder with config.json + weights
base_model_name = "peft-doctor/tiny-base"   # the name adapters and servers use for it

[[adapters]]
name = "support-bot"
version = 1
path = "adapter"

[data]
train = "../../data/train.jsonl"
train_slices = ["arithmetic", "reverse", "format", "safety"]   # slices the adapter was trained on
mix = { arithmetic = 1.0, reverse = 1.0 }                      # optional sampling weights

[eval]
eval_set = "../../data/eval.jsonl"
baseline = "eval/baseline.csv"        # prompt-only (base model, no adapter)
candidates = ["eval/candidate.csv"]
baseline_variant = "base"

[serving]
configs = ["serving/vllm.yaml"]
registry = "registry.yaml"

[training]
log_dir = "train"                      # where trainer_state.json / runs/ live
command = ["trl", "sft", "--config", "sft.yaml"]  # optional: retrain with this command (doctor.jobs.external)

[recipe]                               # TrainingArguments fields, exactly as passed
learning_rate = 2e-4
max_steps = 120
per_device_train_batch_size = 8
max_grad_norm = 1.0
warmup_ratio = 0.03
lr_scheduler_type = "cosine"
seed = 7

[recipe.lora]                          # peft.LoraConfig fields
r = 8
lora_alpha = 16
target_modules = ["q_proj", "v_proj"]

[recipe.quantization]                  # BitsAndBytesConfig fields (qlora only)
load_in_4bit = true
bnb_4bit_quant_type = "nf4"
bnb_4bit_compute_dtype = "float16"
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError

METHODS = ("lora", "qlora")


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ReadError(path, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise ReadError(path, "invalid TOML: arrays or tables nested too deep to parse") from None
    except UnicodeDecodeError as exc:
        raise ReadError(path, f"not UTF-8 text ({exc.reason})", f"byte {exc.start}") from None
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror}") from None
    rollout = data.get("rollout")
    if not isinstance(rollout, dict):
        raise ReadError(path, "missing [rollout] table")
    method = rollout.get("method", "lora")
    if method not in METHODS:
        raise ReadError(path, f"rollout.method = {method!r}; expected one of {', '.join(METHODS)}", "rollout.method")
    for i, a in enumerate(data.get("adapters", [])):
        if not isinstance(a, dict) or "path" not in a or "name" not in a:
            raise ReadError(path, "each [[adapters]] entry needs name and path", f"adapters[{i}]")
    return data


def resolve(manifest_dir: Path, value: str | None) -> Path | None:
    """A manifest path, relative to the manifest's folder."""
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else (manifest_dir / p)
