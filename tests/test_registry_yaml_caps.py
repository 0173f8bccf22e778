"""Every path that reads registry.yaml is capped (probes/common/yamlsafe.py): an alias bomb or an oversized
file is refused with an error naming the file, quickly and without expanding it."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from doctor.core.probe import ReadError
from doctor.core.settings import Settings
from doctor.engine import check
from probes.common import yamlsafe
from probes.registry.store import SCHEMA, Registry, add_version, dump, load, save, set_status

# a billion laughs: 10 ** 9 scalars once expanded, a few hundred bytes as written
BOMB = (
    "\n".join(
        ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
        + [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]" for i in range(1, 10)]
    )
    + f"\nschema: {SCHEMA}\nadapters:\n  - name: bot\n    version: 1\n    path: v1\n    status: canary\n"
)


def _refused(fn, path: Path) -> ReadError:
    """Run fn, expecting a ReadError naming `path`, within a second and a few MiB."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ReadError) as err:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5
    assert peak < 32 * 1024 * 1024, peak
    assert Path(err.value.path) == path
    return err.value


def _bomb(tmp_path: Path) -> Path:
    p = tmp_path / "registry.yaml"
    p.write_text(BOMB)
    return p


def test_load_refuses_an_alias_bomb(tmp_path):
    p = _bomb(tmp_path)
    assert "alias" in _refused(lambda: load(p), p).reason


def test_load_refuses_an_oversized_file(tmp_path, monkeypatch):
    p = tmp_path / "registry.yaml"
    p.write_text(f"schema: {SCHEMA}\nadapters: []\n" + "# padding\n" * 200)
    monkeypatch.setattr(yamlsafe, "MAX_BYTES", 1024)
    assert "limit 1024" in _refused(lambda: load(p), p).reason


def test_add_version_and_set_status_refuse_an_alias_bomb(tmp_path):
    p = _bomb(tmp_path)
    _refused(lambda: add_version(p, {"name": "bot", "path": "v2"}), p)
    _refused(lambda: set_status(p, "bot", 1, "active"), p)
    assert p.read_text() == BOMB  # nothing was written
    assert not p.with_name("registry.yaml.lock").exists()


def test_round_trip_rewrite_refuses_an_alias_bomb(tmp_path):
    """The ruamel round trip (save/dump with the file's original text) reads the text again: capped too."""
    p = _bomb(tmp_path)
    data = {"schema": SCHEMA, "adapters": [{"name": "bot", "version": 1, "path": "v1"}]}
    _refused(lambda: dump(data, BOMB, p), p)
    _refused(lambda: save(Registry(p, data, BOMB)), p)
    assert p.read_text() == BOMB
    assert not list(tmp_path.glob(".registry.yaml.*.tmp"))


def test_round_trip_rewrite_refuses_oversized_text(tmp_path, monkeypatch):
    p = tmp_path / "registry.yaml"
    text = f"schema: {SCHEMA}\nadapters: []\n" + "# padding\n" * 200
    monkeypatch.setattr(yamlsafe, "MAX_BYTES", 1024)
    _refused(lambda: dump({"schema": SCHEMA, "adapters": []}, text, p), p)


def test_check_reports_an_alias_bomb_registry_as_doc001(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "registry.yaml").write_text(BOMB)
    t0 = time.perf_counter()
    report = check([root], Settings())
    assert time.perf_counter() - t0 < 30
    doc = [f for f in report.findings if f.rule == "DOC001"]
    assert doc and all(Path(f.path).name == "registry.yaml" for f in doc)
    assert "alias" in doc[0].message
    assert not [f for f in report.findings if f.rule.startswith("REG")]
