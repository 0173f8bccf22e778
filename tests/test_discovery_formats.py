"""Each family owns its formats (probes/<family>/formats.py); discovery asks them strongest evidence first.

The ties between families are where the order shows: these files carry two families' signatures at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.core import discovery
from doctor.core.discovery import Classifier, Evidence
from probes import FAMILIES, classifiers, classify_dir, classify_file, discover
from tests.conftest import REPO, ROLLOUTS

TIES = [
    # (file name, content, kind): the stronger evidence wins
    ("trainer_log.jsonl", json.dumps({"slice": "a", "score": 1, "loss": 1.0, "step": 1}) + "\n", "training_log"),
    ("registry.yaml", "schema: peft-doctor/registry\nadapters: []\n# vllm serve m --enable-lora\n", "registry"),
    ("serve.yaml", "base_model: m\nlearning_rate: 1e-4\nenable_lora: true\n", "serving_config"),
    ("recipe.yaml", "base_model: m\nlearning_rate: 1e-4\n", "training_config"),
    ("log.csv", "slice,score,loss,step\na,1,2.0,1\n", "eval_table"),
    ("log.jsonl", json.dumps({"loss": 1.0, "current_steps": 1}) + "\n", "training_log"),
    ("Dockerfile.json", json.dumps({"model": "a", "metrics": {"acc": 1}}), None),  # a Dockerfile, not a summary
    ("summary.json", json.dumps({"model": "a", "metrics": {"acc": 1}}), "eval_table"),
    ("adapter_config.json", json.dumps({"model": "a", "metrics": {"acc": 1}}), None),  # part of its folder
]


@pytest.mark.parametrize(("name", "text", "kind"), TIES, ids=[t[0] for t in TIES])
def test_ties_between_families_keep_their_precedence(tmp_path, name, text, kind):
    path = tmp_path / name
    path.write_text(text)
    assert classify_file(path) == kind


def test_folder_precedence_adapter_then_base_model_then_run_folder(tmp_path):
    run = tmp_path / "mlruns"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (run / "model.safetensors").write_bytes(b"\0" * 8)
    assert classify_dir(run) == "base_model"
    (run / "adapter_config.json").write_text("{}")
    assert classify_dir(run) == "adapter"
    (run / "adapter_config.json").unlink()
    (run / "config.json").write_text("{}")  # no architectures: not a model folder, the run folder name decides
    assert classify_dir(run) == "training_log"


def test_an_adapter_file_as_the_target_stands_for_its_folder(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (found,) = discover(tmp_path / "adapter_config.json")
    assert (found.path, found.kind) == (tmp_path.resolve(), "adapter")


def test_every_family_exports_its_classifiers_in_strength_order():
    import importlib

    for name in FAMILIES:
        mod = importlib.import_module(name)
        assert mod.CLASSIFIERS and all(isinstance(c, Classifier) for c in mod.CLASSIFIERS), name
        assert mod.formats.__name__ == f"{name}.formats"
    strengths = [c.strength for c in classifiers()]
    assert strengths == sorted(strengths)


def test_classifiers_of_one_strength_never_claim_the_same_fixture():
    """Within a strength the family order must not matter: reversing it finds the same demo world."""
    if not ROLLOUTS.is_dir():
        pytest.skip("fixtures not built")
    given = classifiers()
    reversed_within = sorted(reversed(given), key=lambda c: c.strength)
    assert [c.strength for c in reversed_within] == [c.strength for c in given]
    assert reversed_within != list(given)

    def found(order):
        return sorted((str(a.path), a.kind) for a in discovery.discover(ROLLOUTS, order))

    assert found(reversed_within) == found(given)


def test_a_weaker_classifier_asked_first_changes_the_answer(tmp_path):
    """The order is what decides a tie (so the tests above can fail)."""
    path = tmp_path / "log.csv"
    path.write_text("slice,score,loss,step\na,1,2.0,1\n")
    hint_first = sorted(classifiers(), key=lambda c: c.strength != Evidence.HINT)
    assert discovery.classify_file(path, hint_first) == "training_log"
    assert discovery.classify_file(path, classifiers()) == "eval_table"


def test_a_file_is_read_once_however_many_classifiers_look(tmp_path, monkeypatch):
    path = tmp_path / "table.jsonl"  # eval and training both look at its columns
    path.write_text(json.dumps({"a": 1}) + "\n")
    opened = []
    real_open = Path.open

    def counting_open(self, *args, **kwargs):
        if self == path:
            opened.append(args)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    assert classify_file(path) is None
    assert len(opened) == 1


def test_formats_modules_import_nothing_heavy():
    """formats.py is on every `doctor check` start-up: names and a peek, no numpy/yaml/pandas/pyarrow."""
    code = (
        "import sys\n"
        f"for f in {FAMILIES!r}: __import__(f + '.formats')\n"
        "print(','.join(m for m in ('numpy', 'yaml', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
