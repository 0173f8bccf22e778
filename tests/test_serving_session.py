"""Per-scan state in the serving family: an adapter's header + config (AdapterInfo) is read once per scan,
shared by the route checks and the compatibility matrix, and read again by the next scan — even after an
edit that keeps the file's size and mtime (a module-level cache keyed by them would serve the old facts)."""

from __future__ import annotations

import os

from doctor.core.settings import Settings
from doctor.engine import check
from probes.common import adapterinfo
from tests.test_serving_configs import BASE, make_rollout

VLLM_YAML = f"model: {BASE}\nenable-lora: true\nmax-lora-rank: 8\nlora-modules: ['support-bot=./adapter']\n"


def test_adapter_info_is_read_once_per_scan_and_again_by_the_next(tmp_path, monkeypatch):
    root = make_rollout(tmp_path / "r", "vllm.yaml", VLLM_YAML, r=8, register=False)
    reads: list[str] = []
    real = adapterinfo.read_adapter_info

    def counting(folder):
        reads.append(str(folder))
        return real(folder)

    monkeypatch.setattr(adapterinfo, "read_adapter_info", counting)
    first = check([root], Settings())
    assert len(reads) == 1  # the route's checks and its matrix row share one read
    assert not any(f.rule == "SRV003" for f in first.findings)
    cfg = root / "adapter" / "adapter_config.json"
    st = cfg.stat()
    text = cfg.read_text()
    assert '"r": 8,' in text
    cfg.write_text(text.replace('"r": 8,', '"r": 9,'))  # same length
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = check([root], Settings())
    assert len(reads) == 2
    assert any(f.rule == "SRV003" and "rank 9 > max-lora-rank 8" in f.message for f in second.findings)
