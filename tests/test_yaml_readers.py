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
