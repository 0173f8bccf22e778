"""The registry file format (probes.registry.store) and the REG rules."""

from __future__ import annotations

import json
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from doctor.core.probe import ReadError
from doctor.core.settings import Settings
from doctor.engine import check
from probes.registry.store import SCHEMA, add_version, load, save, set_status, validate

BASE = "peft-doctor/tiny-base"


def write_adapter(folder: Path, r: int = 8, base: str = BASE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(r)
    save_file(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.normal(size=(r, 64)).astype(
                np.float32
            ),
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.normal(size=(64, r)).astype(
                np.float32
            ),
        },
        str(folder / "adapter_model.safetensors"),
    )
    cfg = {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": ["q_proj"],
        "base_model_name_or_path": base,
        "bias": "none",
    }
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


# ------------------------------------------------------------------ store


def test_add_version_creates_then_chains_rollback(tmp_path):
    reg_path = tmp_path / "registry.yaml"
    write_adapter(tmp_path / "v1")
    write_adapter(tmp_path / "v2", r=16)
    e1 = add_version(reg_path, {"name": "bot", "path": "v1", "base_model": BASE, "status": "active"})
    assert e1["version"] == 1 and e1["rollback_to"] is None and len(e1["sha256"]) == 64
    e2 = add_version(reg_path, {"name": "bot", "path": "v2", "base_model": BASE})
    assert (e2["version"], e2["rollback_to"], e2["status"]) == (2, 1, "canary")
    reg = load(reg_path)
    assert reg.data["schema"] == SCHEMA and [e["version"] for e in reg.versions("bot")] == [1, 2]
    assert validate(reg) == []
    set_status(reg_path, "bot", 2, "active")
    reg = load(reg_path)
    assert reg.get("bot", 1)["status"] == "retired" and reg.active("bot")["version"] == 2
    with pytest.raises(ValueError):
        add_version(reg_path, {"name": "bot", "path": "v2", "version": 2})


def test_unknown_keys_survive_rewrite_and_write_is_atomic(tmp_path, monkeypatch):
    reg_path = tmp_path / "registry.yaml"
    reg_path.write_text(
        textwrap.dedent(
            f"""
            schema: {SCHEMA}
            owner: ml-platform
            adapters:
              - name: bot
                version: 1
                path: v1
                status: active
                rollback_to: null
                ticket: OPS-12
            """
        )
    )
    write_adapter(tmp_path / "v2")
    add_version(reg_path, {"name": "bot", "path": "v2"})
    data = yaml.safe_load(reg_path.read_text())
    assert data["owner"] == "ml-platform" and data["adapters"][0]["ticket"] == "OPS-12"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a failure while writing leaves the old file intact and no temp file behind
    before = reg_path.read_text()
    reg = load(reg_path)
    reg.entries.append({"name": "x", "version": 1, "path": "p"})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save(reg)
    assert reg_path.read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_add_version_serialized(tmp_path):
    reg_path = tmp_path / "registry.yaml"
    for i in range(8):
        write_adapter(tmp_path / f"v{i}")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: add_version(reg_path, {"name": "bot", "path": f"v{i}"}), range(8)))
    assert sorted(e["version"] for e in load(reg_path).entries) == list(range(1, 9))


def test_validate_reports_bad_fields(tmp_path):
    p = tmp_path / "registry.yaml"
    p.write_text(
        f"schema: {SCHEMA}\nadapters:\n  - name: bot\n    version: two\n"
        "    path: v1\n    status: live\n    sha256: abc\n"
    )
    msgs = " ".join(x["message"] for x in validate(load(p)))
    assert "version" in msgs and "status" in msgs and "sha256" in msgs


def test_load_rejects_alias_bomb_and_non_mapping(tmp_path):
    p = tmp_path / "registry.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]")
    p.write_text("\n".join(lines) + "\nadapters: []\n")
    with pytest.raises(ReadError, match="alias"):
        load(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ReadError):
        load(p)


# ------------------------------------------------------------------ rules


def _rollout(tmp_path: Path, entries: list[dict], serving: str | None = None) -> Path:
    root = tmp_path / "r"
    root.mkdir(exist_ok=True)
    (root / "registry.yaml").write_text(yaml.safe_dump({"schema": SCHEMA, "adapters": entries}, sort_keys=False))
    if serving is not None:
        (root / "serving").mkdir(exist_ok=True)
        (root / "serving" / "vllm.yaml").write_text(serving)
    return root


def _reg(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        if f.rule.startswith("REG"):
            out.setdefault(f.rule, []).append(f.message)
    return out


def _sha(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def test_registry_integrity_rules(tmp_path):
    root = tmp_path / "r"
    v1, v2, v3 = (write_adapter(root / f"a/v{i}", r=4 * i) for i in (1, 2, 3))
    entries = [
        {"name": "bot", "version": 1, "path": "a/v1", "sha256": _sha(v1), "status": "active", "rollback_to": None},
        {"name": "bot", "version": 2, "path": "a/v2", "sha256": "0" * 64, "status": "active", "rollback_to": None},
        {"name": "bot", "version": 3, "path": "a/v3", "sha256": _sha(v3), "status": "canary", "rollback_to": 7},
        {"name": "bot", "version": 3, "path": "a/v3", "status": "retired"},
        {"name": "gone", "version": 1, "path": "a/nowhere", "status": "canary"},
        {"name": "bad", "version": "x", "path": "p", "status": "live"},
        {
            "name": "other",
            "version": 1,
            "path": "a/v2",
            "base_model": "meta-llama/Llama-3-8B",
            "status": "retired",
            "sha256": _sha(v2),
        },
    ]
    got = _reg(check([_rollout(tmp_path, entries)], Settings()))
    assert "REG001" in got and "REG002" in got and "REG003" in got
    assert any("bot v2" in m for m in got["REG004"])
    assert any("bot v2 is active with rollback_to = null" in m for m in got["REG005"])
    assert not any("bot v1" in m for m in got["REG005"])  # a first release has nothing to roll back to
    assert any("rollback_to v7" in m for m in got["REG006"])
    assert any("gone v1" in m for m in got["REG007"])
    assert any("meta-llama" in m for m in got["REG011"])


def test_rollback_target_missing_on_disk(tmp_path):
    root = tmp_path / "r"
    v2 = write_adapter(root / "v2")
    entries = [
        {"name": "bot", "version": 1, "path": "v1", "status": "retired"},
        {"name": "bot", "version": 2, "path": "v2", "sha256": _sha(v2), "status": "active", "rollback_to": 1},
    ]
    got = _reg(check([_rollout(tmp_path, entries)], Settings()))
    assert list(got) == ["REG006"] and "has no adapter_model.safetensors" in got["REG006"][0]


def test_governance_against_serving(tmp_path):
    root = tmp_path / "r"
    v1 = write_adapter(root / "adapter")
    drift = write_adapter(root / "served-copy", r=16)  # served from another folder with other bytes
    entries = [
        {"name": "bot", "version": 1, "path": "adapter", "sha256": _sha(v1), "status": "active", "rollback_to": None},
        {"name": "idle", "version": 1, "path": "adapter", "sha256": _sha(v1), "status": "canary", "rollback_to": None},
    ]
    serving = (
        f"model: {BASE}\nenable-lora: true\nmax-lora-rank: 16\n"
        "lora-modules:\n  - bot=./served-copy\n  - rogue=./adapter\n"
    )
    got = _reg(check([_rollout(tmp_path, entries, serving)], Settings()))
    assert any("rogue" in m for m in got["REG008"])
    assert any("idle v1" in m for m in got["REG009"])
    assert any("bot" in m and "matching no registered version" in m for m in got["REG004"])
    assert any("2 adapters routed" in m for m in got["REG010"])
    assert drift.exists()


def test_large_registry_parallel_path_matches_serial(tmp_path):
    root = tmp_path / "r"
    entries = []
    for i in range(40):
        f = write_adapter(root / f"a/{i}", r=8)
        entries.append(
            {
                "name": f"bot{i}",
                "version": 1,
                "path": f"a/{i}",
                "sha256": _sha(f) if i % 7 else "1" * 64,
                "status": "retired",
            }
        )
    _rollout(tmp_path, entries)
    serial = Settings(thresholds={"REG007": {"parallel_min": 10_000}})
    parallel = Settings(thresholds={"REG007": {"parallel_min": 2, "workers": 2}})
    a, b = _reg(check([root], serial)), _reg(check([root], parallel))
    assert a == b and len(a["REG004"]) == 6
