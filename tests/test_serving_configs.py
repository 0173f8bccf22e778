"""Serving configs that serve a small real adapter, each with one planted mismatch the right rule names."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from doctor.core.settings import Settings
from doctor.engine import check
from doctor.render.matrix import compatibility_matrix, render_matrix
from probes.registry.store import add_version
from probes.serving.readers import parse_config

BASE = "peft-doctor/tiny-base"
HIDDEN, INTER, HEADS, LAYERS, VOCAB = 64, 128, 4, 2, 256


def write_adapter(
    folder: Path,
    r: int = 8,
    *,
    base: str = BASE,
    extra_cfg: dict | None = None,
    hidden: int = HIDDEN,
    dora: bool = False,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(r)
    tensors = {}
    for i in range(LAYERS):
        for mod in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{i}.self_attn.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(size=(r, hidden)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (rng.normal(size=(hidden, r)) * 0.01).astype(np.float32)
            if dora:
                tensors[f"{key}.lora_magnitude_vector"] = np.ones(hidden, np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": base,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": dora,
        "use_rslora": False,
    }
    cfg.update(extra_cfg or {})
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def write_base(folder: Path, **over) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "vocab_size": VOCAB,
    }
    cfg.update(over)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file({"model.embed_tokens.weight": np.zeros((4, 4), np.float32)}, str(folder / "model.safetensors"))
    return folder


def make_rollout(
    root: Path, config_name: str, config_text: str, *, r: int = 8, adapter_dir: str = "adapter", register: bool = True
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_base(root / "models" / "tiny-base")
    write_adapter(root / adapter_dir, r=r)
    (root / "rollout.toml").write_text(
        textwrap.dedent(
            f"""
            [rollout]
            name = "t"
            method = "lora"
            base_model = "models/tiny-base"
            base_model_name = "{BASE}"

            [[adapters]]
            name = "support-bot"
            version = 1
            path = "{adapter_dir}"

            [serving]
            configs = ["serving/{config_name}"]
            registry = "registry.yaml"
            """
        )
    )
    cfg = root / "serving" / config_name
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(config_text).lstrip())
    if register:
        add_version(
            root / "registry.yaml",
            {
                "name": "support-bot",
                "path": adapter_dir,
                "base_model": BASE,
                "quantization": "none",
                "method": "lora",
                "status": "active",
            },
        )
    return root


def ours(report, severities=("error", "warning")) -> set[str]:
    return {f.rule for f in report.findings if f.rule[:3] in ("SRV", "REG") and f.severity.value in severities}


def run(root: Path, settings: Settings | None = None):
    return check([root], settings or Settings())


# ------------------------------------------------------------------ the four formats, healthy and planted

COMPOSE = """
x-vllm: &default
  image: vllm/vllm-openai:v0.6.3
  volumes:
    - ../adapter:/models/adapters/support-bot:ro
    - ../models/tiny-base:/models/base:ro
  environment:
    - VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
services:
  vllm:
    <<: *default
    command: >-
      --model /models/base --served-model-name peft-doctor/tiny-base --enable-lora
      --max-lora-rank ${MAX_LORA_RANK:-RANKCAP} --max-loras 2
      --lora-modules support-bot=/models/adapters/support-bot
"""

K8S = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: support-bot
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.6.3
          command: ["vllm", "serve"]
          args:
            - "$(BASE_MODEL)"
            - "--enable-lora"
            - "--max-lora-rank=16"
            - "--max-loras=MAXLORAS"
            - "--max-cpu-loras=4"
            - "--lora-modules"
            - "support-bot=/adapters/support-bot"
          env:
            - name: BASE_MODEL
              value: peft-doctor/tiny-base
          volumeMounts:
            - name: adapters
              mountPath: /adapters/support-bot
      volumes:
        - name: adapters
          hostPath:
            path: ROOT/adapter
---
apiVersion: v1
kind: Service
metadata:
  name: support-bot
"""

SHELL = """
#!/usr/bin/env bash
set -euo pipefail
pip install vllm==0.6.3
MODEL=peft-doctor/tiny-base
exec vllm serve "$MODEL" \\
  --served-model-name SERVEDNAME \\
  --enable-lora --max-lora-rank 16 --max-loras 1 \\
  --lora-modules support-bot=./adapter
"""

VLLM_YAML = """
model: peft-doctor/tiny-base
served-model-name: peft-doctor/tiny-base
enable-lora: true
max-lora-rank: CAP
max-loras: 1
max-cpu-loras: 2
lora-dtype: bfloat16
lora-modules:
  - "support-bot=./adapter"
"""

DOCKERFILE = """
FROM vllm/vllm-openai:VERSION
ENV BASE=peft-doctor/tiny-base
CMD ["--model", "peft-doctor/tiny-base", "--enable-lora", "--max-lora-rank", "128", \\
     "--lora-modules", "support-bot=./adapter"]
"""


CASES = {
    # name: (file name, healthy text, planted text, planted rule, r)
    "compose": (
        "docker-compose.yaml",
        COMPOSE.replace("RANKCAP", "16"),
        COMPOSE.replace("RANKCAP", "16"),
        "SRV003",
        32,
    ),
    "k8s": ("deployment.yaml", K8S.replace("MAXLORAS", "2"), K8S.replace("MAXLORAS", "8"), "SRV005", 8),
    "shell": ("serve.sh", SHELL.replace("SERVEDNAME", BASE), SHELL.replace("SERVEDNAME", "support-bot"), "SRV021", 8),
    "vllm-yaml": ("vllm.yaml", VLLM_YAML.replace("CAP", "16"), VLLM_YAML.replace("CAP", "48"), "SRV004", 8),
    "dockerfile": (
        "Dockerfile",
        DOCKERFILE.replace("VERSION", "v0.6.3"),
        DOCKERFILE.replace("VERSION", "v0.4.2"),
        "SRV004",
        8,
    ),
}


def _make(tmp_path: Path, case: str, planted: bool) -> Path:
    name, healthy, bad, _, r = CASES[case]
    text = bad if planted else healthy
    root = tmp_path / case
    text = text.replace("ROOT", str(root))
    return make_rollout(root, name, text, r=r if planted else 8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_healthy_config_is_clean(tmp_path, case):
    report = run(_make(tmp_path, case, planted=False))
    arts = [a for a in report.artifacts if a.kind == "serving_config"]
    assert arts, "config not discovered"
    assert arts[0].facts["servers"], arts[0].facts
    assert ours(report) == set(), [f.message for f in report.findings if f.rule[:3] in ("SRV", "REG")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_mismatch_named_by_the_right_rule(tmp_path, case):
    report = run(_make(tmp_path, case, planted=True))
    assert ours(report) == {CASES[case][3]}, [(f.rule, f.message) for f in report.findings]
    f = next(f for f in report.findings if f.rule == CASES[case][3])
    assert f.path is not None and f.path.name == CASES[case][0]


def test_compose_anchor_merge_and_volumes_are_followed(tmp_path):
    root = _make(tmp_path, "compose", planted=True)
    report = run(root)
    srv = next(a for a in report.artifacts if a.kind == "serving_config").facts["servers"][0]
    assert srv["engine"] == "vllm" and srv["version"] == "0.6.3"
    assert srv["max_lora_rank"] == 16 and srv["max_loras"] == 2 and srv["max_cpu_loras"] == 2
    assert ["../adapter", "/models/adapters/support-bot"] in srv["volumes"]
    f = next(f for f in report.findings if f.rule == "SRV003")
    assert "rank 32 > max-lora-rank 16" in f.message and f.evidence["rank"] == 32


def test_shell_facts(tmp_path):
    root = _make(tmp_path, "shell", planted=False)
    pc = parse_config(root / "serving" / "serve.sh")
    (srv,) = pc.servers
    assert (srv.engine, srv.version, srv.model, srv.routes) == ("vllm", "0.6.3", BASE, ["support-bot"])
    assert srv.adapters[0].line == 5  # the exec line that starts the command


def test_vllm_yaml_engine_pin_in_a_comment(tmp_path):
    """`vllm serve --config` has no version key: a `vllm==X` pin in a comment is the engine version."""
    path = tmp_path / "vllm.yaml"
    path.write_text("# canary; engine: vllm==0.6.3\n" + VLLM_YAML.replace("CAP", "16"))
    (srv,) = parse_config(path).servers
    assert (srv.engine, srv.version) == ("vllm", "0.6.3")
    path.write_text(VLLM_YAML.replace("CAP", "16"))
    assert parse_config(path).servers[0].version is None


def test_matrix_rows_and_render(tmp_path):
    root = _make(tmp_path, "compose", planted=True)
    # a second registered version with a rank the server takes: the matrix says ok for it
    write_adapter(root / "adapters" / "v2", r=8)
    add_version(root / "registry.yaml", {"name": "support-bot", "path": "adapters/v2", "base_model": BASE})
    report = run(root)
    rows = compatibility_matrix(report)
    by_version = {r["version"]: r for r in rows}
    assert by_version[1]["ok"] is False and by_version[1]["why"][0]["rule"] == "SRV003"
    assert by_version[2]["ok"] is True and by_version[2]["served"] is False
    assert by_version[1]["engine"] == "vllm 0.6.3" and by_version[1]["base_model"] == BASE
    text = render_matrix(rows)
    assert "SRV003" in text and "ok" in text
    md = render_matrix(rows, "markdown")
    assert md.startswith("| base model |") and md.count("\n") == len(rows) + 2
    from doctor.engine import group_rollouts
    from probes import discover

    fresh = group_rollouts(discover(root), root)
    assert [r["ok"] for r in compatibility_matrix(fresh)] == [r["ok"] for r in rows]


# ------------------------------------------------------------------ engines and adapter properties


def _vllm_root(tmp_path: Path, extra: str = "", **adapter) -> Path:
    text = f"model: {BASE}\nenable-lora: true\nmax-lora-rank: 64\nlora-modules: ['support-bot=./adapter']\n{extra}"
    root = make_rollout(tmp_path / "r", "vllm.yaml", text)
    if adapter:
        write_adapter(root / "adapter", **adapter)
        add_version(root / "registry.yaml", {"name": "support-bot", "path": "adapter", "status": "retired"})
    return root


def _srv(report) -> dict[str, str]:
    return {f.rule: f.message for f in report.findings if f.rule.startswith("SRV")}


def test_dora_bias_modules_to_save_init(tmp_path):
    root = _vllm_root(
        tmp_path, dora=True, extra_cfg={"bias": "all", "modules_to_save": ["lm_head"], "init_lora_weights": "pissa"}
    )
    got = _srv(run(root))
    assert {"SRV008", "SRV009", "SRV010", "SRV011"} <= set(got), got


def test_missing_fields_and_unknown_keys(tmp_path):
    root = _vllm_root(tmp_path)
    cfg = json.loads((root / "adapter" / "adapter_config.json").read_text())
    del cfg["lora_alpha"]
    (root / "adapter" / "adapter_config.json").write_text(json.dumps(cfg))
    save_file(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((8, HIDDEN), np.float32),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_up.weight": np.ones((HIDDEN, 8), np.float32),
        },
        str(root / "adapter" / "adapter_model.safetensors"),
    )
    got = _srv(run(root))
    assert "SRV014" in got and "lora_alpha" in got["SRV014"]
    assert "SRV013" in got and "lora_up" in got["SRV013"]


def test_adapter_not_found_and_non_default_name(tmp_path):
    root = _vllm_root(tmp_path)
    w = root / "adapter" / "adapter_model.safetensors"
    w.rename(root / "adapter" / "my_adapter.safetensors")
    got = _srv(run(root))
    assert "SRV015" in got and "my_adapter.safetensors" in got["SRV015"]


def test_base_mismatch_by_name_and_dims(tmp_path):
    text = "model: ./other-base\nenable-lora: true\nlora-modules: ['support-bot=./adapter']\n"
    root = make_rollout(tmp_path / "r", "vllm.yaml", text)
    write_base(root / "other-base", hidden_size=96)
    got = _srv(run(root))
    assert "SRV017" in got and "in-dim 64 ≠ 96" in got["SRV017"]
    assert "SRV016" in got and "'./other-base'" in got["SRV016"]


def test_architecture_and_quantization(tmp_path):
    text = f"model: {BASE}\nenable-lora: true\nlora-modules: ['support-bot=./adapter']\n"
    root = make_rollout(tmp_path / "r", "vllm.yaml", text)
    write_base(
        root / "models" / "tiny-base",
        architectures=["GPT2LMHeadModel"],
        quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True},
    )
    got = _srv(run(root))
    assert "SRV007" in got and "GPT2LMHeadModel" in got["SRV007"]
    assert "SRV018" in got and "bitsandbytes" in got["SRV018"] and "0.33" in got["SRV018"]


def test_lora_modules_without_enable_lora_and_duplicates(tmp_path):
    text = f"model: {BASE}\nlora-modules: ['support-bot=./adapter', 'support-bot=./adapter']\nmax-loras: 2\n"
    got = _srv(run(make_rollout(tmp_path / "r", "vllm.yaml", text)))
    assert {"SRV006", "SRV022"} <= set(got)


def test_yaml_mapping_lora_module_is_not_json(tmp_path):
    text = f"model: {BASE}\nenable-lora: true\nlora-modules:\n  - name: support-bot\n    path: ./adapter\n"
    report = run(make_rollout(tmp_path / "r", "vllm.yaml", text))
    f = next(f for f in report.findings if f.rule == "SRV023")
    assert "Python repr" in f.message and f.line == 4


def test_json_lora_module_with_base_model_name(tmp_path):
    item = json.dumps({"name": "support-bot", "path": "./adapter", "base_model_name": "meta-llama/Llama-3-8B"})
    text = f"model: {BASE}\nenable-lora: true\nlora-modules:\n  - '{item}'\n"
    got = _srv(run(make_rollout(tmp_path / "r", "vllm.yaml", text)))
    assert "SRV016" in got and "route base_model_name 'meta-llama/Llama-3-8B'" in got["SRV016"]


def test_tgi_and_lorax(tmp_path):
    compose = f"""
    services:
      tgi:
        image: ghcr.io/huggingface/text-generation-inference:2.4.0
        command: --model-id {BASE}
        environment:
          LORA_ADAPTERS: support-bot=./adapter,bad=a=b
      lorax:
        image: ghcr.io/predibase/lorax:0.12
        command: ["--model-id", "{BASE}", "--quantize", "bitsandbytes-nf4", "--max-active-adapters", "4"]
    """
    root = make_rollout(tmp_path / "r", "compose.yaml", compose)
    write_adapter(root / "adapter", dora=True)
    add_version(root / "registry.yaml", {"name": "support-bot", "path": "adapter", "status": "retired"})
    report = run(root)
    servers = next(a for a in report.artifacts if a.kind == "serving_config").facts["servers"]
    tgi, lorax = servers
    assert (tgi["engine"], tgi["version"], tgi["routes"]) == ("tgi", "2.4.0", ["support-bot"])
    assert (lorax["engine"], lorax["max_loras"], lorax["quantization"]) == ("lorax", 4, "bitsandbytes-nf4")
    got = _srv(report)
    assert "SRV023" in got and "bad=a=b" in got["SRV023"]
    assert "SRV008" in got and "silently" in got["SRV008"]
    assert "SRV018" not in got


# ------------------------------------------------------------------ paths


def test_paths_outside_root_not_followed_unless_allowed(tmp_path):
    outside = write_adapter(tmp_path / "elsewhere" / "adapter", r=64)
    text = f"model: {BASE}\nenable-lora: true\nlora-modules: ['support-bot={outside}']\n"
    root = make_rollout(tmp_path / "r", "vllm.yaml", text)
    got = _srv(run(root))
    assert "SRV019" in got and "SRV003" not in got
    allowed = Settings(sections={"serving": {"allow_outside_root": True}})
    got = _srv(run(root, allowed))
    assert "SRV019" not in got and "SRV003" in got


def test_container_path_is_cannot_verify_info(tmp_path):
    text = f"model: {BASE}\nenable-lora: true\nlora-modules: ['support-bot=/models/support-bot']\n"
    report = run(make_rollout(tmp_path / "r", "vllm.yaml", text))
    f = next(f for f in report.findings if f.rule == "SRV020")
    assert f.severity.value == "info"
    assert "SRV015" not in {x.rule for x in report.findings}


# ------------------------------------------------------------------ bad input


def test_alias_bomb_is_rejected_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 12):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("enable-lora: true")
    root = make_rollout(tmp_path / "r", "vllm.yaml", "\n".join(lines) + "\n")
    report = run(root)  # an unguarded loader would expand 9**12 nodes and never return
    f = next(f for f in report.findings if f.rule == "DOC001")
    assert "alias" in f.message


def test_recursive_alias_rejected(tmp_path):
    root = make_rollout(tmp_path / "r", "vllm.yaml", "enable-lora: true\nx: &x [*x]\n")
    assert any(f.rule == "DOC001" and "recursive" in f.message for f in run(root).findings)


def test_unterminated_quote_reported_with_line(tmp_path):
    script = (
        '#!/bin/sh\necho start\nvllm serve "peft-doctor/tiny-base --enable-lora \\\n'
        "  --lora-modules support-bot=./adapter\n"
    )
    report = run(make_rollout(tmp_path / "r", "serve.sh", script))
    f = next(f for f in report.findings if f.rule == "SRV001")
    assert f.line == 3 and "No closing quotation" in f.message and "line 3" in f.message


def test_env_interpolation_defaults_and_unresolved(tmp_path):
    compose = """
    services:
      vllm:
        image: vllm/vllm-openai:${VLLM_TAG:-v0.6.3}
        command: >-
          --model peft-doctor/tiny-base --enable-lora
          --max-lora-rank ${RANK} --lora-modules support-bot=${ADAPTER_DIR:-./adapter}
    """
    root = make_rollout(tmp_path / "r", "compose.yaml", compose)
    report = run(root)
    srv = next(a for a in report.artifacts if a.kind == "serving_config").facts["servers"][0]
    assert srv["version"] == "0.6.3" and srv["adapters"][0]["target"] == "./adapter"
    got = {f.rule: f for f in report.findings if f.rule.startswith("SRV")}
    assert "SRV002" in got and "RANK" in got["SRV002"].message and got["SRV002"].line == 6
    assert srv["max_lora_rank"] is None  # not guessed
    assert "SRV003" not in got
    # a .env file beside the compose file resolves it
    (root / "serving" / ".env").write_text("RANK=48\n")
    got = {f.rule for f in run(root).findings if f.rule.startswith("SRV")}
    assert "SRV002" not in got and "SRV004" in got  # 48 is not an allowed cap


def test_unknown_yaml_and_garbage_never_crash(tmp_path):
    for i, text in enumerate(
        [
            "services: [1, 2]\nimage: vllm/vllm-openai\n",
            "key: 'unterminated\nenable-lora: x\n",
            "--- !!python/object:os.system\nenable-lora: 1\n",
            "\x00\x01 vllm serve",
        ]
    ):
        root = make_rollout(tmp_path / f"r{i}", "vllm.yaml" if i < 3 else "serve.sh", text)
        report = run(root)
        assert not any(f.rule == "DOC002" for f in report.findings), [(f.rule, f.message) for f in report.findings]


@pytest.mark.parametrize(
    "config_arg, rule, text",
    [
        ("serving/missing.yaml", "SRV001", "--config file serving/missing.yaml not found"),
        ("../../outside.yaml", "SRV019", "--config ../../outside.yaml is outside the rollout; not followed"),
    ],
)
def test_unusable_config_file_is_reported(tmp_path, config_arg, rule, text):
    script = f"#!/bin/sh\nexec vllm serve {BASE} --enable-lora --config {config_arg}\n"
    report = run(make_rollout(tmp_path / "r", "serve.sh", script))
    f = next((f for f in report.findings if f.rule == rule), None)
    assert f is not None and text in f.message and f.locator.endswith(": config"), [
        (x.rule, x.message) for x in report.findings
    ]
