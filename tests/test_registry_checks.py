"""The registry family's shape: one check per REG rule, per-scan state only (no module-level caches)."""

from __future__ import annotations

import os
import types

import yaml

import probes.registry as family
from doctor.core.probe import ProbeContext
from doctor.core.session import ScanSession
from doctor.core.settings import Settings
from doctor.engine import check
from probes.registry import loaded
from probes.registry.store import SCHEMA
from tests.test_registry_store import BASE, _sha, write_adapter


def _impl_modules() -> list[types.ModuleType]:
    for probe in family.PROBES:
        getattr(probe, "impl", probe)  # imports the probe and its check modules
    import sys

    return [m for name, m in sorted(sys.modules.items()) if name.startswith("probes.registry.") and m is not None]


def test_one_check_per_rule_and_reg004_runs_in_both_scopes():
    _impl_modules()
    assert family.CHECKS.missing() == []
    assert {c.rule.id for c in family.CHECKS} == {r.id for r in family.RULES}
    scopes = {c.rule.id: c.scopes for c in family.CHECKS}
    assert scopes["REG004"] == ("artifact", "rollout")  # registered files per registry, served files per rollout
    assert {scopes[r] for r in ("REG008", "REG009", "REG010")} == {("rollout",)}
    assert all(scopes[r] == ("artifact",) for r in ("REG001", "REG002", "REG003", "REG005", "REG006", "REG007"))


def test_no_module_level_mutable_state():
    for mod in _impl_modules():
        for name, value in vars(mod).items():
            if name.startswith("__") or name == "PROBES" or isinstance(value, types.ModuleType):
                continue  # PROBES: the family's probe instances, fixed at import
            assert not isinstance(value, dict | list | set), f"{mod.__name__}.{name} is module-level state"


def _rollout(tmp_path):
    root = tmp_path / "r"
    v1 = write_adapter(root / "adapter")
    entries = [{"name": "bot", "version": 1, "path": "adapter", "sha256": _sha(v1), "status": "active"}]
    (root / "registry.yaml").write_text(yaml.safe_dump({"schema": SCHEMA, "adapters": entries}, sort_keys=False))
    (root / "serving").mkdir()
    (root / "serving" / "vllm.yaml").write_text(
        f"model: {BASE}\nenable-lora: true\nmax-lora-rank: 16\nlora-modules:\n  - bot=./adapter\n  - rogue=./adapter\n"
    )
    return root


def _scan_registry(root, session: ScanSession) -> list:
    """The serving probe's artifact pass (for the servers' facts), then the registry probe's two passes."""
    from doctor.engine import group_rollouts
    from probes import discover
    from probes.serving.probe import ServingProbe

    (rollout,) = group_rollouts(discover(root), root)
    ctx = ProbeContext(settings=Settings(), rollout=rollout, session=session)
    for a in rollout.of_kind("serving_config"):
        list(ServingProbe().check(a, ctx))
    probe = family.PROBES[0]
    findings = [f for a in rollout.of_kind("registry") for f in probe.check(a, ctx)]
    return findings + list(probe.check_rollout(rollout, ctx))


def test_a_registry_is_read_once_per_scan_and_again_by_the_next(tmp_path, monkeypatch):
    root = _rollout(tmp_path)
    reads: list[str] = []
    real = loaded.load

    def counting(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(loaded, "load", counting)
    first = _scan_registry(root, ScanSession())
    assert len(reads) == 1  # the artifact pass and the rollout pass share one read
    assert any(f.rule == "REG008" and "rogue" in f.message for f in first)
    # The next scan does not see the last one's registry: an edit of the same size and mtime is read again.
    reg = root / "registry.yaml"
    st = reg.stat()
    reg.write_text(reg.read_text().replace("status: active", "status: canar"))  # same length
    os.utime(reg, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = _scan_registry(root, ScanSession())
    assert len(reads) == 2
    assert any(f.rule == "REG001" and "canar" in f.message for f in second)
    assert not any(f.rule == "REG001" for f in first)


def test_served_facts_come_from_the_serving_configs_facts(tmp_path):
    """REG008/REG010 read the servers from the serving probe's artifact facts (no serving import)."""
    root = _rollout(tmp_path)
    report = check([root], Settings())
    servers = next(a for a in report.artifacts if a.kind == "serving_config").facts["servers"]
    assert [a["name"] for a in servers[0]["adapters"]] == ["bot", "rogue"]
    too_many = [f for f in report.findings if f.rule == "REG010"]
    assert too_many and "2 adapters routed (bot, rogue) but max-loras 1" in too_many[0].message
