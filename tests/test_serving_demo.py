"""The demo world: `healthy` is clean for SRV/REG; `serving-mismatch` gives exactly its three planted problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.engine import check
from doctor.render.matrix import compatibility_matrix, render_matrix

ROLLOUTS = Path(__file__).resolve().parent.parent / "fixtures" / "rollouts"


def _rollout(name: str) -> Path:
    root = ROLLOUTS / name
    if not (root / "serving" / "vllm.yaml").is_file() or not (root / "registry.yaml").is_file():
        pytest.skip(f"demo rollout {name} not built yet")
    return root


def _ours(report):
    return sorted((f.rule, f.message) for f in report.findings if f.rule[:3] in ("SRV", "REG"))


def test_healthy_is_clean():
    report = check([_rollout("healthy")], Settings())
    assert _ours(report) == []
    rows = compatibility_matrix(report)
    assert rows and all(r["ok"] for r in rows), render_matrix(rows)


def test_serving_mismatch_gives_exactly_the_three_planted_problems():
    report = check([_rollout("serving-mismatch")], Settings())
    got = _ours(report)
    assert [r for r, _ in got] == ["REG004", "SRV003", "SRV016"], got
    msgs = dict(got)
    assert "rank 32 > max-lora-rank 16" in msgs["SRV003"]
    assert "'peft-doctor/tiny-base'" in msgs["SRV016"] and "tiny-base-v2" in msgs["SRV016"]
    assert "registry says" in msgs["REG004"]
    rows = compatibility_matrix(report)
    assert [r["ok"] for r in rows] == [False]
    assert {w["rule"] for w in rows[0]["why"]} == {"SRV003", "SRV016"}
