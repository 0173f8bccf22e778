"""Which files are serving configs: vLLM / TGI / LoRAX / SGLang launch lines in shell scripts, Dockerfiles,
Makefiles, Python launchers, compose files, k8s manifests and engine YAML (asked by doctor.core.discovery).

Light on purpose: imported on every `doctor check` start-up, so names and a 16 KiB peek only (no parser).
"""

from __future__ import annotations

import re
from pathlib import Path

from doctor.core.discovery import NOT_AN_ARTIFACT, Classifier, Evidence, FilePeek, Verdict

SERVING_WORDS = re.compile(
    r"vllm\s+serve|vllm\.entrypoints|--enable-lora|enable-lora|text-generation-launcher|lorax-launcher|"
    r"LORA_ADAPTERS|--lora-adapters|--lora-modules|ghcr\.io/huggingface/text-generation-inference|"
    r"vllm/vllm-openai|predibase/lorax|ghcr\.io/predibase/lorax|"
    r"^\s*(?:enable[-_]lora|lora[-_]modules|max[-_]lora[-_]rank)\s*:|"  # `vllm serve --config` YAML keys
    r"sglang\.launch_server|lmsysorg/sglang|--lora-paths|kubeai\.org/|servingEngineSpec|litellm_params",
    re.M,
)
# A Python file is a launcher only when an engine entry point sits in a string literal of an argument list.
_PY_LAUNCHER = re.compile(
    r"""["'](?:sglang\.launch_server|vllm\.entrypoints\.openai\.api_server)["']|["']vllm["']\s*,\s*["']serve["']|"""
    r"""\bServerArgs\(\s*model_path\s*=|"""
    r"""\b(?:system|run|Popen|call|check_call|check_output)\(\s*f?["'][^"'\n]*"""
    r"""(?:vllm\s+serve|sglang\.launch_server|vllm\.entrypoints)"""
)
_COMPOSE_NAME = re.compile(r"^(?:docker-)?compose[\w.-]*\.ya?ml$")
_BUILD_DOCKERFILE = re.compile(r"^\s*(?:dockerfile|build)\s*:\s*['\"]?([\w./-]+)", re.M)


def _is_yaml(low: str) -> bool:
    return low.endswith((".yaml", ".yml"))


def classify_launcher(path: Path, peek: FilePeek) -> Verdict:
    """Shell scripts, Dockerfiles, Makefiles and Python files are serving configs when they launch an engine;
    otherwise they are nothing doctor reads (a `Dockerfile.json` is still a Dockerfile: no later look)."""
    low = path.name.lower()
    if _is_yaml(low):
        return None  # YAML (a Dockerfile.yaml too) is judged by its content: classify_yaml
    if low.endswith(".sh") or low == "dockerfile" or low.startswith("dockerfile.") or low.endswith(".dockerfile"):
        return "serving_config" if SERVING_WORDS.search(peek.text()) else NOT_AN_ARTIFACT
    if low in ("makefile", "gnumakefile") or low.endswith(".mk"):
        return "serving_config" if SERVING_WORDS.search(peek.text()) else NOT_AN_ARTIFACT
    if low.endswith(".py"):
        return "serving_config" if _PY_LAUNCHER.search(peek.text()) else NOT_AN_ARTIFACT
    return None


def classify_yaml(path: Path, peek: FilePeek) -> str | None:
    """Engine YAML, k8s manifests, compose files naming an engine image or built from a launching Dockerfile."""
    low = path.name.lower()
    if not _is_yaml(low):
        return None
    text = peek.text()
    if SERVING_WORDS.search(text):
        return "serving_config"
    if _COMPOSE_NAME.match(low) and _compose_builds_server(path, text):
        return "serving_config"
    return None


def _compose_builds_server(path: Path, text: str) -> bool:
    """A compose file whose services are built from a Dockerfile that launches an engine (name + peek)."""
    for value in _BUILD_DOCKERFILE.findall(text):
        if ".." in Path(value).parts or Path(value).is_absolute():
            continue  # a peek never leaves the compose file's folder (the probe follows it only inside the target)
        for cand in (path.parent / value, path.parent / value / "Dockerfile"):
            if cand.is_file() and SERVING_WORDS.search(FilePeek(cand).text()):
                return True
    return False


CLASSIFIERS = (
    Classifier(Evidence.NAME, file=classify_launcher),
    Classifier(Evidence.SIGNATURE, file=classify_yaml),
)
