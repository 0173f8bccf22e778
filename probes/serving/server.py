"""Serving configs, normalized: whatever wrote them (a shell script, a compose file, a Kubernetes pod, a
Helm chart, a Python launcher), the readers in probes.serving.readers produce these.

What a reader cannot parse is recorded as a problem ({"kind", "message", "line"}) on the `Server` or the
`ParsedConfig`, never guessed; probes.serving.rules names the rule each kind is reported under.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENGINES = ("vllm", "tgi", "lorax", "sglang")


@dataclass
class AdapterRef:
    name: str
    target: str  # path or hub id, as written (after interpolation)
    line: int = 1
    base_model_name: str | None = None
    raw: str = ""


@dataclass
class Server:
    """One serving process, normalized."""

    engine: str
    source: str  # shell | makefile | dockerfile | compose | k8s | kubeai | helm | vllm-yaml | python
    name: str = ""  # service / container / script line
    line: int = 1
    version: str | None = None
    model: str | None = None
    served_names: list[str] = field(default_factory=list)
    enable_lora: bool = False
    max_lora_rank: int | None = None
    max_loras: int | None = None
    max_cpu_loras: int | None = None
    lora_dtype: str | None = None
    quantization: str | None = None
    adapters: list[AdapterRef] = field(default_factory=list)
    explicit: list[str] = field(default_factory=list)  # options written in the config (others are defaults)
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (host, container)
    problems: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "message", "line"}
    config_file: str | None = None  # `--config` YAML it reads
    options: dict[str, list[Any]] = field(default_factory=dict)  # engine options as written
    tokenizer: str | None = None  # --tokenizer / --tokenizer-path: what the server tokenizes with
    lora_target_modules: list[str] = field(default_factory=list)  # modules the engine applies LoRA to

    @property
    def routes(self) -> list[str]:
        return [a.name for a in self.adapters]

    @property
    def label(self) -> str:
        v = f" {self.version}" if self.version else ""
        return f"{self.engine}{v}"

    def to_facts(self) -> dict[str, Any]:
        d = asdict(self)
        d["routes"] = self.routes
        d["volumes"] = [list(v) for v in self.volumes]
        return d


@dataclass
class Route:
    """One entry of a routing layer (LiteLLM `model_list`): a public name sent on to a backend model name."""

    name: str  # what clients ask for
    model: str  # what the router sends to the backend (provider prefix removed)
    provider: str = ""  # hosted_vllm, openai, …
    api_base: str | None = None
    line: int = 1


@dataclass
class ParsedConfig:
    path: Path
    format: str
    servers: list[Server] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    routes: list[Route] = field(default_factory=list)


def problem(kind: str, message: str, line: int = 1) -> dict[str, Any]:
    return {"kind": kind, "message": message, "line": line}
