"""One path policy (probes/common/paths.py): inside the rollout or declared by rollout.toml is followed; anything
else an input file names outside the target is not read (DOC010) unless `[paths] allow_outside = true`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import FIXTURES, ROLLOUTS, run_json

TINY = FIXTURES / "models" / "tiny-base"


def _adapter_naming(tmp_path: Path, base_ref: str) -> Path:
    rollout = tmp_path / "rollout"
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", rollout / "adapter")
    cfg = rollout / "adapter" / "adapter_config.json"
    data = json.loads(cfg.read_text())
    data["base_model_name_or_path"] = base_ref
    cfg.write_text(json.dumps(data))
    return rollout


def _elsewhere(tmp_path: Path) -> Path:
    base = tmp_path / "elsewhere" / "tiny-base"
    base.parent.mkdir()
    shutil.copytree(TINY, base)
    return base


def _check(tmp_path: Path, *extra: str) -> dict:
    _, report = run_json("check", "rollout", "--fail-on", "never", *extra, cwd=tmp_path)
    return report


def test_adapter_base_outside_the_target_is_not_read(tmp_path):
    base = _elsewhere(tmp_path)
    _adapter_naming(tmp_path, str(base))
    report = _check(tmp_path)
    doc010 = [f for f in report["findings"] if f["rule"] == "DOC010"]
    assert len(doc010) == 1 and doc010[0]["path"] == "rollout/adapter/adapter_config.json"
    assert "base_model_name_or_path" in doc010[0]["message"] and str(base) in doc010[0]["message"]
    adapter = next(a for a in report["artifacts"] if a["kind"] == "adapter")
    assert "base" not in adapter["facts"]  # nothing of the outside config.json in the report


def test_a_setting_allows_outside_paths(tmp_path):
    base = _elsewhere(tmp_path)
    _adapter_naming(tmp_path, str(base))
    (tmp_path / "doctor.toml").write_text("[paths]\nallow_outside = true\n")
    report = _check(tmp_path, "--config", "doctor.toml")
    assert not [f for f in report["findings"] if f["rule"] == "DOC010"]
    adapter = next(a for a in report["artifacts"] if a["kind"] == "adapter")
    assert adapter["facts"]["base"]["found_by"] == "adapter base_model_name_or_path"


def test_a_base_the_manifest_declares_is_followed(tmp_path):
    """The demo world's shape: a shared base model beside the rollout, declared by rollout.toml."""
    base = _elsewhere(tmp_path)
    rollout = _adapter_naming(tmp_path, str(base))
    (rollout / "rollout.toml").write_text(
        f'[rollout]\nname = "r"\nmethod = "lora"\nbase_model = "{base}"\n\n[[adapters]]\nname = "a"\npath = "adapter"\n'
    )
    report = _check(tmp_path)
    assert not [f for f in report["findings"] if f["rule"] == "DOC010"]
    adapter = next(a for a in report["artifacts"] if a["kind"] == "adapter")
    assert "base" in adapter["facts"]


def test_registry_entry_outside_the_target_is_not_read(tmp_path):
    outside = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(ROLLOUTS / "healthy" / "adapter", outside)
    rollout = tmp_path / "rollout"
    rollout.mkdir()
    (rollout / "registry.yaml").write_text(
        "schema: peft-doctor/registry/1\nadapters:\n"
        f"  - name: support-bot\n    version: 1\n    path: {outside}\n    status: canary\n    sha256: {'ab' * 32}\n"
    )
    report = _check(tmp_path)
    rules = [f["rule"] for f in report["findings"]]
    assert "DOC010" in rules
    doc010 = next(f for f in report["findings"] if f["rule"] == "DOC010")
    assert doc010["path"] == "rollout/registry.yaml" and doc010["locator"] == "support-bot v1"
    assert not any(f["evidence"].get("actual") for f in report["findings"])  # its weights were not hashed
    (tmp_path / "doctor.toml").write_text("[paths]\nallow_outside = true\n")
    allowed = _check(tmp_path, "--config", "doctor.toml")
    assert "DOC010" not in [f["rule"] for f in allowed["findings"]]
    assert any(f["evidence"].get("actual") for f in allowed["findings"])  # now read: the sha256 mismatch
