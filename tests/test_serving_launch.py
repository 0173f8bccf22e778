"""Real launch forms: each file is discovered as a serving config and parsed with its flags.

Makefile recipes, a compose service built from a Dockerfile, shell scripts, Kubernetes / KubeAI / Helm,
SGLang (command line and Python launchers that build argv), TGI LORA_ADAPTERS, LoRAX, and a LiteLLM proxy
config routing names to adapters.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from probes import classify_file, discover
from probes.serving.readers import parse_config
from tests.test_serving_configs import make_rollout, ours, run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def only_server(path: Path, root: Path | None = None):
    pc = parse_config(path, root=root)
    assert len(pc.servers) == 1, (pc.servers, pc.problems)
    return pc.servers[0]


MAKEFILE = """
MODEL ?= models/tiny-base
RANK := 32
ADAPTERS = support-bot=./adapter

.PHONY: serve smoke
serve: ## start the server
\t@vllm serve $(MODEL) \\
\t\t--enable-lora --max-lora-rank $(RANK) \\
\t\t--lora-modules $(ADAPTERS)

smoke:
\tcurl -s localhost:8000/v1/models | jq .
"""


def test_makefile_recipe_is_found_with_its_flags(tmp_path):
    mk = write(tmp_path / "Makefile", MAKEFILE)
    assert classify_file(mk) == "serving_config"
    srv = only_server(mk)
    assert srv.engine == "vllm" and srv.source == "makefile" and srv.name == "Makefile:serve"
    assert srv.model == "models/tiny-base" and srv.enable_lora and srv.max_lora_rank == 32
    assert [(a.name, a.target) for a in srv.adapters] == [("support-bot", "./adapter")]
    assert srv.line == 7  # the recipe's first line


def test_makefile_unknown_variable_is_unresolved(tmp_path):
    mk = write(tmp_path / "Makefile", "serve:\n\tvllm serve m --enable-lora --max-lora-rank $(CAP)\n")
    srv = only_server(mk)
    assert srv.max_lora_rank is None
    assert any(p["kind"] == "unresolved_var" and "CAP" in p["message"] for p in srv.problems)


def test_makefile_rank_cap_reaches_the_rule(tmp_path):
    root = make_rollout(tmp_path / "r", "Makefile", MAKEFILE.replace("RANK := 32", "RANK := 8"), r=16)
    report = run(root)
    f = next(f for f in report.findings if f.rule == "SRV003")
    assert "LoRA rank 16 > max-lora-rank 8" in f.message and f.path.name == "Makefile"


DOCKERFILE = """
FROM vllm/vllm-openai:v0.8.5
ENV VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
COPY adapter /models/adapters/support-bot
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
CMD ["--model", "/models/base", "--enable-lora", "--max-lora-rank", "16"]
"""

COMPOSE_BUILD = """
services:
  llm:
    build:
      context: ..
      dockerfile: docker/vllm.Dockerfile
    image: acme/support-bot-server:1
    command: >-
      --model /models/base --served-model-name peft-doctor/tiny-base --enable-lora --max-lora-rank 8
      --lora-modules support-bot=/models/adapters/support-bot
    volumes:
      - ../adapter:/models/adapters/support-bot:ro
      - ../models/tiny-base:/models/base:ro
  web:
    image: nginx:1.27
"""


def test_compose_service_built_from_a_dockerfile(tmp_path):
    root = tmp_path / "r"
    write(root / "docker" / "vllm.Dockerfile", DOCKERFILE)
    compose = write(root / "deploy" / "docker-compose.yml", COMPOSE_BUILD)
    assert classify_file(compose) == "serving_config"  # no engine word in the compose file itself
    srv = only_server(compose, root)
    # engine and version come from the Dockerfile's FROM; `command:` replaces its CMD, ENTRYPOINT stays
    assert (srv.engine, srv.version, srv.source) == ("vllm", "0.8.5", "compose")
    assert srv.name == "llm (build vllm.Dockerfile)" and srv.max_lora_rank == 8
    assert srv.routes == ["support-bot"] and ("../adapter", "/models/adapters/support-bot") in srv.volumes


def test_compose_build_dockerfile_cmd_used_without_command(tmp_path):
    root = tmp_path / "r"
    write(root / "Dockerfile", DOCKERFILE)
    compose = write(root / "compose.yaml", "services:\n  llm:\n    build: .\n")
    srv = only_server(compose, root)
    assert srv.model == "/models/base" and srv.max_lora_rank == 16 and srv.enable_lora


def test_compose_build_outside_the_target_is_not_followed(tmp_path):
    write(tmp_path / "elsewhere" / "Dockerfile", DOCKERFILE)
    compose = write(
        tmp_path / "r" / "compose.yaml",
        "services:\n  llm:\n    build: ../elsewhere\n    command: --model m --enable-lora\n",
    )
    pc = parse_config(compose, root=tmp_path / "r")
    assert pc.servers == [] and [p["kind"] for p in pc.problems] == ["outside"]


def test_compose_build_end_to_end_rank_cap(tmp_path):
    root = make_rollout(tmp_path / "r", "docker-compose.yml", COMPOSE_BUILD.replace("context: ..", "context: ."), r=16)
    write(root / "serving" / "docker" / "vllm.Dockerfile", DOCKERFILE)
    report = run(root)
    msgs = [f.message for f in report.findings if f.rule == "SRV003"]
    assert msgs and "vllm 0.8.5" in msgs[0] and "LoRA rank 16 > max-lora-rank 8" in msgs[0]


SHELL_SGLANG = """
#!/usr/bin/env bash
set -e
BASE=models/tiny-base
python -m sglang.launch_server --model-path "$BASE" --port 30000 \\
  --lora-paths support-bot=./adapter '{"lora_name": "faq", "lora_path": "./faq", "pinned": true}' ./raw \\
  --max-loras-per-batch 4 --max-lora-rank 64 --lora-target-modules q_proj v_proj
"""


def test_sglang_command_line(tmp_path):
    sh = write(tmp_path / "serve.sh", SHELL_SGLANG)
    assert classify_file(sh) == "serving_config"
    srv = only_server(sh)
    assert srv.engine == "sglang" and srv.model == "models/tiny-base"
    assert [(a.name, a.target) for a in srv.adapters] == [
        ("support-bot", "./adapter"),
        ("faq", "./faq"),
        ("./raw", "./raw"),
    ]
    assert (srv.max_loras, srv.max_lora_rank, srv.enable_lora) == (4, 64, True)
    assert srv.lora_target_modules == ["q_proj", "v_proj"]


PY_LAUNCHER = """
import os
import subprocess

MODEL = os.environ.get("MODEL", "models/tiny-base")
RANK = 32

cmd = ["python3", "-m", "sglang.launch_server", "--model-path", MODEL]
cmd += ["--lora-paths", f"support-bot={os.path.join('x', 'y')}", "faq=./faq"]
cmd.extend(["--max-lora-rank", str(RANK)])
cmd.append("--enable-lora")
subprocess.run(cmd, check=True)
"""


def test_python_launcher_building_argv(tmp_path):
    py = write(tmp_path / "launch.py", PY_LAUNCHER)
    assert classify_file(py) == "serving_config"
    srv = only_server(py)
    assert srv.engine == "sglang" and srv.source == "python" and srv.name == "launch.py:cmd"
    assert srv.model == "models/tiny-base" and srv.max_lora_rank == 32 and srv.enable_lora
    assert srv.routes == ["support-bot", "faq"]
    # the computed path is not a constant: reported, never guessed
    assert any(p["kind"] == "unresolved_var" for p in srv.problems)


def test_python_server_args_and_plain_python_is_ignored(tmp_path):
    py = write(
        tmp_path / "engine.py",
        """
        from sglang.srt.server_args import ServerArgs
        args = ServerArgs(model_path="models/tiny-base", lora_paths=["support-bot=./adapter"], max_loras_per_batch=2)
        """,
    )
    srv = only_server(py)
    assert (srv.engine, srv.model, srv.routes, srv.max_loras) == ("sglang", "models/tiny-base", ["support-bot"], 2)
    other = write(tmp_path / "train.py", "import peft\nprint('vllm serve is mentioned in a comment only')\n")
    assert classify_file(other) is None
    shell = write(
        tmp_path / "run.py",
        '''
        """Usage: vllm serve some/model --enable-lora (a docstring, not a launch)"""
        import os, subprocess
        BASE = "models/tiny-base"
        subprocess.run(f"vllm serve {BASE} --enable-lora --lora-modules bot=./adapter", shell=True)
        ''',
    )
    assert classify_file(shell) == "serving_config"
    srv = only_server(shell)
    assert (srv.model, srv.routes, srv.line) == ("models/tiny-base", ["bot"], 4)


KUBEAI = """
apiVersion: kubeai.org/v1
kind: Model
metadata:
  name: tiny-chat
spec:
  features: [TextGeneration]
  url: hf://peft-doctor/tiny-base
  engine: VLLM
  args:
    - --max-lora-rank=8
  adapters:
    - name: support-bot
      url: hf://acme/support-bot-lora
    - name: Bad_Name
      url: hf://acme/x
    - name: local
      url: /mnt/adapters/local
---
apiVersion: kubeai.org/v1
kind: Model
metadata:
  name: embedder
spec:
  url: hf://acme/embedder
  engine: Infinity
  adapters:
    - name: nope
      url: hf://acme/nope
"""


def test_kubeai_model_with_adapters(tmp_path):
    y = write(tmp_path / "model.yaml", KUBEAI)
    assert classify_file(y) == "serving_config"
    pc = parse_config(y)
    (srv,) = pc.servers
    assert (srv.engine, srv.source, srv.model, srv.max_lora_rank) == ("vllm", "kubeai", "peft-doctor/tiny-base", 8)
    assert srv.enable_lora and srv.routes == ["support-bot"] and "tiny-chat" in srv.served_names
    bad = sorted(p["message"] for p in srv.problems if p["kind"] == "invalid_adapter_spec")
    assert len(bad) == 2 and "not hf:// or s3://" in bad[0] and "Bad_Name" in bad[1]
    assert any("only served with engine VLLM" in p["message"] for p in pc.problems)


K8S_SGLANG = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sglang}
spec:
  template:
    spec:
      containers:
        - name: sglang
          image: lmsysorg/sglang:v0.4.6.post1
          command: ["python3", "-m", "sglang.launch_server"]
          args: ["--model-path", "/models/base", "--lora-paths", "support-bot=/adapters/sb",
                 "--max-loras-per-batch", "2"]
"""


def test_kubernetes_sglang_container(tmp_path):
    srv = only_server(write(tmp_path / "deploy.yaml", K8S_SGLANG))
    assert (srv.engine, srv.version, srv.source, srv.routes, srv.max_loras) == (
        "sglang",
        "0.4.6",
        "k8s",
        ["support-bot"],
        2,
    )


HELM_STACK = """
servingEngineSpec:
  enableEngine: true
  modelSpec:
    - name: tiny
      repository: vllm/vllm-openai
      tag: v0.9.2
      modelURL: peft-doctor/tiny-base
      enableLoRA: true
      vllmConfig:
        maxLoras: 4
        extraArgs: ["--max-lora-rank", "32", "--lora-modules", "support-bot=/data/adapter"]
"""

HELM_GENERIC = """
replicaCount: 1
server:
  image:
    repository: ghcr.io/huggingface/text-generation-inference
    tag: "2.4.1"
  args: ["--model-id", "peft-doctor/tiny-base", "--lora-adapters", "support-bot=/data/adapter"]
"""


def test_helm_values_production_stack_and_generic(tmp_path):
    y = write(tmp_path / "values.yaml", HELM_STACK)
    assert classify_file(y) == "serving_config"
    srv = only_server(y)
    assert (srv.engine, srv.version, srv.source, srv.model) == ("vllm", "0.9.2", "helm", "peft-doctor/tiny-base")
    assert (srv.enable_lora, srv.max_loras, srv.max_lora_rank, srv.routes) == (True, 4, 32, ["support-bot"])
    g = only_server(write(tmp_path / "g" / "values.yaml", HELM_GENERIC))
    assert (g.engine, g.version, g.routes) == ("tgi", "2.4.1", ["support-bot"])


TGI_COMPOSE = """
services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:2.4.1
    environment:
      MODEL_ID: peft-doctor/tiny-base
      LORA_ADAPTERS: support-bot=/data/adapter,faq=/data/faq
  lorax:
    image: ghcr.io/predibase/lorax:0.12
    command: --model-id peft-doctor/tiny-base --max-active-adapters 16
"""


def test_tgi_lora_adapters_and_lorax(tmp_path):
    pc = parse_config(write(tmp_path / "compose.yaml", TGI_COMPOSE))
    tgi, lorax = pc.servers
    assert (tgi.engine, tgi.routes, tgi.enable_lora) == ("tgi", ["support-bot", "faq"], True)
    assert (lorax.engine, lorax.version, lorax.max_loras) == ("lorax", "0.12", 16)


LITELLM = """
model_list:
  - model_name: support-bot
    litellm_params:
      model: hosted_vllm/support-bot
      api_base: http://vllm:8000/v1
  - model_name: faq-bot
    litellm_params:
      model: openai/faq
      api_base: os.environ/FAQ_BASE
  - model_name: refund-bot
    litellm_params:
      model: hosted_vllm/peft-doctor/tiny-base
litellm_settings:
  drop_params: true
"""


def test_litellm_routes_are_parsed(tmp_path):
    y = write(tmp_path / "litellm.yaml", LITELLM)
    assert classify_file(y) == "serving_config"
    pc = parse_config(y)
    assert pc.format == "litellm" and pc.servers == []
    got = [(r.name, r.provider, r.model, r.api_base) for r in pc.routes]
    assert got == [
        ("support-bot", "hosted_vllm", "support-bot", "http://vllm:8000/v1"),
        ("faq-bot", "openai", "faq", None),
        ("refund-bot", "hosted_vllm", "peft-doctor/tiny-base", None),
    ]


VLLM_SHELL = """
vllm serve peft-doctor/tiny-base --enable-lora --lora-modules support-bot=./adapter
"""


@pytest.mark.parametrize(
    ("name", "rule", "needle"),
    [
        ("support-bot", None, None),
        ("ghost", "SRV025", "'ghost' to 'ghost', which no server in the rollout serves"),
        ("base", "SRV026", "sends 'support-bot' to the base model"),
    ],
)
def test_litellm_routes_checked_against_the_servers(tmp_path, name, rule, needle):
    root = make_rollout(tmp_path / "r", "serve.sh", VLLM_SHELL)
    target = {"support-bot": "support-bot", "ghost": "ghost", "base": "peft-doctor/tiny-base"}[name]
    public = "ghost" if name == "ghost" else "support-bot"
    write(
        root / "gateway" / "litellm.yaml",
        f"model_list:\n  - model_name: {public}\n    litellm_params:\n      model: hosted_vllm/{target}\n",
    )
    report = run(root)
    found = [f for f in report.findings if f.rule in ("SRV025", "SRV026")]
    if rule is None:
        assert found == [] and not ours(report)
    else:
        assert [f.rule for f in found] == [rule] and needle in found[0].message
        assert found[0].path.name == "litellm.yaml" and found[0].line == 2


def test_nothing_recognisable_stays_doc003(tmp_path):
    write(tmp_path / "Makefile", "build:\n\tgo build ./...\n")
    write(tmp_path / "helper.py", "print('hello')\n")
    assert discover(tmp_path) == []
    report = run(tmp_path)
    assert [f.rule for f in report.findings] == ["DOC003"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Makefile", "serve:\n\tvllm serve $(A $(B)) --lora-modules 'x=\n\t@\n\\\n"),
        ("Makefile", "A = $(A)\nserve:\n\tvllm serve $(A) --max-lora-rank $(A)\n"),
        ("launch.py", "cmd = ['vllm', 'serve'\nsubprocess.run(cmd)\n"),
        ("launch.py", "cmd = ['python', '-m', 'sglang.launch_server', *rest, f'{x!r:>{w}}', 3.5, None]\n"),
        ("launch.py", "ServerArgs(model_path=f(), lora_paths=[{'a': 1}], max_loras_per_batch='many')\n"),
        ("model.yaml", "apiVersion: kubeai.org/v1\nkind: Model\nmetadata: [x]\nspec:\n  engine: VLLM\n  adapters: 7\n"),
        ("model.yaml", "apiVersion: kubeai.org/v1\nkind: Model\nspec: {engine: VLLM, url: 5, args: {a: 1}}\n"),
        ("values.yaml", "servingEngineSpec:\n  modelSpec: [1, {vllmConfig: 3, name: {x: 1}}, {extraArgs: x}]\n"),
        ("values.yaml", "image: {repository: vllm/vllm-openai, tag: [1]}\nargs: 5\n"),
        ("litellm.yaml", "model_list: [1, {litellm_params: 3}, {model_name: a, litellm_params: {model: 7}}]\n"),
        ("docker-compose.yml", "services:\n  a:\n    build: {context: 5, dockerfile: [x]}\n    command: --model m\n"),
    ],
)
def test_broken_launch_files_never_crash(tmp_path, name, text):
    root = make_rollout(tmp_path / "r", name, text)
    report = run(root)
    crashes = [(f.rule, f.message) for f in report.findings if f.rule == "DOC002"]
    assert not crashes


def test_sglang_rank_above_its_max_lora_rank_is_srv003(tmp_path):
    """SGLang allocates LoRA buffers for --max-lora-rank: a larger adapter does not fit. Without the flag it
    is inferred from the adapters, so no finding."""
    compose = "services:\n  sg:\n    image: lmsysorg/sglang:v0.4.6\n    command: {cmd}\n    volumes: ['..:/w']\n"
    cmd = "python3 -m sglang.launch_server --model-path /w/models/tiny-base --lora-paths support-bot=/w/adapter"
    root = make_rollout(tmp_path / "a", "compose.yaml", compose.format(cmd=cmd + " --max-lora-rank 4"), r=8)
    msgs = [f.message for f in run(root).findings if f.rule == "SRV003"]
    assert msgs and "LoRA rank 8 > max-lora-rank 4 on sglang" in msgs[0] and "--max-lora-rank 8" in msgs[0], msgs
    root = make_rollout(tmp_path / "b", "compose.yaml", compose.format(cmd=cmd), r=8)
    assert not [f for f in run(root).findings if f.rule == "SRV003"]
