"""Every YAML the training family reads goes through the capped loader (probes/common/yamlsafe.py): an
alias bomb is refused with DOC001 naming the file, quickly and before anything is built; a W&B
config.yaml that is not a mapping is a finding naming it, not a crash (DOC002)."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.test_training_helpers import run

# Nine levels of nine aliases: ~387 million nodes once expanded (the loader counts them unexpanded).
BOMB = 'a0: &a0 ["lol"]\n' + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


@pytest.fixture
def nothing_constructed(monkeypatch):
    """Fail if the loader builds a document at all: the bomb must be refused on its node graph."""

    def refuse(self, node):
        raise AssertionError("the alias bomb was constructed")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", refuse)


def _wandb_run(tmp_path, config: str):
    run_dir = tmp_path / "wandb" / "offline-run-20250101_000000-abc"
    (run_dir / "files").mkdir(parents=True)
    (run_dir / "run-abc.wandb").write_bytes(b"\x00binary")
    (run_dir / "files" / "config.yaml").write_text(config)
    lines = [f"{{'loss': {2 - i * 0.01}, 'grad_norm': 0.5, 'learning_rate': 0.0002}}" for i in range(40)]
    (run_dir / "files" / "output.log").write_text("\n".join(lines) + "\n")
    return run_dir


def _only_unreadable(rep, name: str):
    assert not [f for f in rep.findings if f.rule == "DOC002"], [f.message for f in rep.findings]
    docs = [f for f in rep.findings if f.rule == "DOC001"]
    assert len(docs) == 1, [(f.rule, f.message) for f in rep.findings]
    assert docs[0].path.name == name and docs[0].message.startswith(f"{name}: "), docs[0].message
    return docs[0]


def test_wandb_config_that_is_a_list_names_the_file_and_the_history_is_still_read(tmp_path):
    run_dir = _wandb_run(tmp_path, "- logging_steps\n- 5\n")
    rep = run(tmp_path)
    f = _only_unreadable(rep, "config.yaml")
    assert f.path == run_dir / "files" / "config.yaml"
    assert "not a mapping of run settings (a YAML list)" in f.message
    (art,) = [a for a in rep.artifacts if a.kind == "training_log"]
    assert art.facts["points"] == 40


def test_wandb_config_alias_bomb_is_refused_quickly(tmp_path, nothing_constructed):
    _wandb_run(tmp_path, BOMB)
    t0 = time.perf_counter()
    rep = run(tmp_path)
    assert time.perf_counter() - t0 < 10
    f = _only_unreadable(rep, "config.yaml")
    assert "YAML rejected" in f.message and "alias" in f.message, f.message
    (art,) = [a for a in rep.artifacts if a.kind == "training_log"]
    assert art.facts["points"] == 40  # the run's history is analysed all the same


@pytest.mark.parametrize(
    "name, head",
    [
        ("axolotl.yaml", "base_model: x\nadapter: lora\nlearning_rate: 2e-4\n"),
        ("llamafactory.yaml", "model_name_or_path: x\nstage: sft\nfinetuning_type: lora\nlearning_rate: 1.0e-4\n"),
    ],
)
def test_training_config_alias_bomb_is_refused_quickly(tmp_path, nothing_constructed, name, head):
    (tmp_path / name).write_text(head + BOMB)
    t0 = time.perf_counter()
    rep = run(tmp_path)
    assert time.perf_counter() - t0 < 10
    (art,) = [a for a in rep.artifacts if a.kind == "training_config"]
    assert art.path.name == name
    f = _only_unreadable(rep, name)
    assert "YAML rejected" in f.message and "alias" in f.message, f.message
    assert not [f for f in rep.findings if f.rule.startswith("CFG")]


def test_training_config_invalid_yaml_names_file_and_position(tmp_path):
    (tmp_path / "axolotl.yaml").write_text("base_model: x\nlearning_rate: [2e-4\nadapter: lora\n")
    f = _only_unreadable(run(tmp_path), "axolotl.yaml")
    assert "invalid YAML" in f.message and f.locator.startswith("line "), (f.message, f.locator)


def test_wandb_config_with_a_syntax_error_is_a_skipped_entry_naming_it(tmp_path):
    _wandb_run(tmp_path, "logging_steps:\n  value: [5\n")
    rep = run(tmp_path)
    assert not [f for f in rep.findings if f.rule in ("DOC001", "DOC002")], [f.message for f in rep.findings]
    (f,) = [f for f in rep.findings if f.rule == "TRN010"]
    assert f.message.startswith("config.yaml is not YAML: ") and " at line " in f.message, f.message
    assert f.locator == "files/config.yaml"
