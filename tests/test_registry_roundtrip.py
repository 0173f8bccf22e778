"""Rewriting registry.yaml keeps what the user wrote: comments, key order, quoting (ruamel round trip)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from probes.registry.store import add_version, load, set_status

HAND_WRITTEN = """\
# Adapter registry for support-bot — edited by hand, reviewed in PRs.
schema: peft-doctor/registry/1
owner: ml-platform   # an unknown top-level key
adapters:
  # v1: the first release; keep until v3 is proven
  - version: 1
    name: support-bot
    path: adapter
    status: canary   # serving 5% of traffic
    created: "2026-11-29T00:00:00Z"
    ticket: 'OPS-1234'
"""


def test_add_version_keeps_comments_key_order_and_quotes(tmp_path: Path):
    reg = tmp_path / "registry.yaml"
    reg.write_text(HAND_WRITTEN)
    add_version(reg, {"name": "support-bot", "path": "adapters/support-bot-v2", "sha256": None})
    text = reg.read_text()
    for kept in (
        "# Adapter registry for support-bot — edited by hand, reviewed in PRs.",
        "owner: ml-platform   # an unknown top-level key",
        "  # v1: the first release; keep until v3 is proven",
        "    ticket: 'OPS-1234'",
        '    created: "2026-11-29T00:00:00Z"',
    ):
        assert kept in text, text
    # v1's keys in the user's order (version before name), its status changed in place.
    first = text.split("  - version: 1\n", 1)[1].split("\n  - ", 1)[0]
    assert first.splitlines()[:2] == ["    name: support-bot", "    path: adapter"]
    assert re.fullmatch(r"    status: retired +# serving 5% of traffic", first.splitlines()[2])
    data = yaml.safe_load(text)
    assert [e["version"] for e in data["adapters"]] == [1, 2]
    assert data["adapters"][1]["status"] == "canary" and data["adapters"][1]["rollback_to"] is None
    assert load(reg).get("support-bot", 2)["path"] == "adapters/support-bot-v2"


def test_set_status_round_trips_too(tmp_path: Path):
    reg = tmp_path / "registry.yaml"
    reg.write_text(HAND_WRITTEN)
    set_status(reg, "support-bot", 1, "active")
    text = reg.read_text()
    assert re.search(r"^    status: active +# serving 5% of traffic$", text, re.M), text
    assert text.startswith("# Adapter registry for support-bot")
