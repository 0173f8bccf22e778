"""Every YAML doctor reads goes through the capped loader (probes/common/yamlsafe.py): an alias bomb in a
user's file is refused, naming the file, before it is built. Family readers have their alias-bomb tests beside
their other tests; these cover the application's readers and the rule that there is no other way in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from doctor.playbook.tree import PlaybookError, load_playbook

ROOT = Path(__file__).resolve().parent.parent

# ten levels of ten aliases each: 10^10 nodes once expanded (a few hundred bytes on disk)
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def test_playbook_alias_bomb_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("playbook: bomb\nentry: start\n" + BOMB)
    with pytest.raises(PlaybookError) as err:
        load_playbook(path)
    assert "bomb.yaml" in str(err.value) and "YAML rejected" in str(err.value)


def test_playbook_invalid_yaml_names_the_position(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("playbook: x\nnodes:\n  a: [1, 2\n")
    with pytest.raises(PlaybookError) as err:
        load_playbook(path)
    assert re.search(r"invalid YAML at line \d+ column \d+", str(err.value))


def test_trainer_config_alias_bomb_is_refused_before_the_copy_is_written(tmp_path):
    from doctor.jobs.external import _write_config

    src, dst = tmp_path / "sft.yaml", tmp_path / "out.yaml"
    src.write_text("learning_rate: 2.0e-4\n" + BOMB)
    with pytest.raises(ValueError, match=r"sft\.yaml: YAML rejected"):
        _write_config(src, dst, {"learning_rate": 1e-4})
    assert not dst.exists()


_PARSE = re.compile(r"\byaml\.(?:safe_)?load(?:_all)?\(|\bYAML\(|\byaml\.(?:compose|parse)\(")


def test_no_yaml_parsed_outside_the_capped_loader():
    """A YAML parse anywhere else would bypass the caps; the registry's round-trip writer is the one other
    place, and it is handed text the capped loader has already accepted."""
    allowed = {ROOT / "probes/common/yamlsafe.py", ROOT / "probes/registry/store.py"}
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for base in ("doctor", "probes")
        for p in sorted((ROOT / base).rglob("*.py"))
        if p not in allowed
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if _PARSE.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


# One file per YAML reader of the serving family (probes/serving/readers/), each recognised by its signature
# before the bomb: the capped loader refuses it as DOC001 naming that file.
SERVING_YAML = {
    "docker-compose.yaml": "services:\n  vllm:\n    image: vllm/vllm-openai:v0.6.3\n    command: --enable-lora\n",
    "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
    "        - name: vllm\n          args: ['vllm serve base --enable-lora']\n",
    "values.yaml": "servingEngineSpec:\n  modelSpec: []\n",
    "model.yaml": "apiVersion: kubeai.org/v1\nkind: Model\nmetadata: {name: m}\n",
    "litellm.yaml": "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n",
    "vllm-config.yaml": "enable-lora: true\nmax-lora-rank: 16\n",
}


@pytest.mark.parametrize("name", sorted(SERVING_YAML))
def test_serving_yaml_alias_bomb_is_doc001_naming_the_file(tmp_path, name):
    from doctor.core.settings import Settings
    from doctor.engine import check

    (tmp_path / name).write_text(SERVING_YAML[name] + BOMB)
    report = check([tmp_path], Settings())
    refused = [f for f in report.findings if f.rule == "DOC001" and f.path is not None and f.path.name == name]
    assert refused and "YAML rejected" in refused[0].message, [(f.rule, f.message) for f in report.findings]
