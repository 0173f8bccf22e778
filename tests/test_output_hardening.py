"""Hostile names and secrets in every output format: non-UTF-8 paths in each format's own convention,
secret values never in any report, `doctor inspect` or TUI export."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from doctor.cli import main
from doctor.render import FORMATS
from tests.test_cli_check import nan_state, write_state

# A folder name that is not valid UTF-8 (Latin-1 "ÿ" as a raw byte), as a Python str (surrogate-escaped).
BAD_NAME = os.fsdecode(b"run\xff")


def _check(tmp_path: Path, fmt: str, *paths: str, verbose: bool = False) -> tuple[int, bytes]:
    out = tmp_path / f"out.{fmt}"
    args = ["check", *paths, "--format", fmt, "--output", str(out)] + (["--verbose"] if verbose else [])
    code = main(args)
    return code, out.read_bytes()


@pytest.fixture
def bad_named(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_state(tmp_path / BAD_NAME, nan_state())
    return tmp_path


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_utf8_folder_name_in_every_format(bad_named, fmt):
    code, raw = _check(bad_named, fmt, ".")
    assert code == 1  # the NaN finding, not an internal error (2)
    text = raw.decode("utf-8")  # valid UTF-8 whatever the format
    if fmt in ("json", "gitlab"):
        data = json.loads(text)
        findings = data["findings"] if fmt == "json" else data
        paths = [f["path"] if fmt == "json" else f["location"]["path"] for f in findings]
        # Escaped JSON: the string decodes to the very name, whose bytes are the folder's.
        assert f"{BAD_NAME}/trainer_state.json" in paths
        assert (bad_named / os.fsdecode(os.fsencode(paths[0]))).exists()
    elif fmt == "sarif":
        data = json.loads(text)
        uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in data["runs"][0]["results"]]
        assert "run%FF/trainer_state.json" in uris
    elif fmt == "junit":
        root = ET.fromstring(raw)
        assert any("run\\xff" in (s.get("name") or "") for s in root.iter("testsuite"))
    else:  # console, markdown, github: the byte shown readably
        assert "run\\xff/trainer_state.json" in text


def test_non_utf8_name_in_inspect(bad_named, capsysbinary):
    assert main(["inspect", "."]) == 0
    assert "run\\xff/trainer_state.json" in capsysbinary.readouterr().out.decode("utf-8")
    assert main(["inspect", ".", "--format", "json"]) == 0
    data = json.loads(capsysbinary.readouterr().out.decode("utf-8"))
    assert f"{BAD_NAME}/trainer_state.json" in [a["path"] for a in data["artifacts"]]


def test_non_utf8_name_in_tui_export(bad_named):
    from doctor.core.settings import Settings
    from doctor.engine import check
    from doctor.tui.screens.export import write_report

    report = check([Path(".")], Settings())
    for fmt in FORMATS:
        written = write_report(report, fmt, bad_named / f"export.{fmt}")
        written.read_bytes().decode("utf-8")


# --- secrets ------------------------------------------------------------------------------------------
API_KEY = "zq-planted-secret-4711"
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
DB_PASSWORD = "hunter2-planted"
PLANTED = (API_KEY, HF_TOKEN, DB_PASSWORD)

COMPOSE = """\
services:
  vllm:
    image: vllm/vllm-openai:v0.6.3
    env_file: .env
    environment:
      HF_TOKEN: ${HF_TOKEN}
      DB_PASSWORD: hunter2-planted
    command: >
      --model peft-doctor/tiny-base-v2 --enable-lora --max-lora-rank 8
      --lora-modules support-bot=/adapters/support --api-key ${API_KEY}
    volumes:
      - ../adapter:/adapters/support
"""


@pytest.fixture
def secret_rollout(tmp_path, monkeypatch, rollouts) -> Path:
    import shutil

    monkeypatch.chdir(tmp_path)
    dest = tmp_path / "r"
    shutil.copytree(rollouts / "serving-mismatch", dest)
    (dest / "serving" / "compose.yaml").write_text(COMPOSE)
    (dest / "serving" / ".env").write_text(f"API_KEY={API_KEY}\nHF_TOKEN={HF_TOKEN}\n")
    return dest


def _no_secret(blob: bytes, where: str) -> None:
    for value in PLANTED:
        assert value.encode() not in blob, f"{value} leaked into {where}"


def test_secrets_redacted_in_every_format(secret_rollout, capsysbinary):
    tmp = secret_rollout.parent
    for fmt in FORMATS:
        code, raw = _check(tmp, fmt, "r", verbose=True)
        assert code == 1
        _no_secret(raw, fmt)
    assert main(["inspect", "r", "--format", "json"]) == 0
    inspected = capsysbinary.readouterr().out
    _no_secret(inspected, "inspect --format json")
    # The facts still say the flag was given: only its value is gone.
    assert b'"api-key": [\n' in inspected and b"[redacted]" in inspected
    assert main(["inspect", "r"]) == 0
    _no_secret(capsysbinary.readouterr().out, "inspect")


def test_secrets_redacted_in_tui_export(secret_rollout):
    from doctor.core.settings import Settings
    from doctor.engine import check
    from doctor.tui.screens.export import write_report

    report = check([Path("r")], Settings())
    for fmt in FORMATS:
        _no_secret(write_report(report, fmt, secret_rollout.parent / f"x.{fmt}").read_bytes(), f"TUI export {fmt}")


def test_redactor_by_name_shape_and_echo():
    from doctor.render.redact import REDACTED, Redactor

    r = Redactor()
    out = r.value(
        {
            "argv": ["vllm", "serve", "--api-key", "abc123xyz", "--max-lora-rank", "8"],
            "cmd": "vllm serve --api-key=abc123xyz --port 8000",
            "env": [{"name": "OPENAI_API_KEY", "value": "v-9999999"}, {"name": "PORT", "value": "8000"}],
            "eos_token": "</s>",
            "note": f"token {HF_TOKEN} and sk-proj-{'a' * 30}",
            "MY_SECRET_THING": 42,
        }
    )
    out = r.echo({**out, "quote": "started with abc123xyz"})
    assert out["argv"] == ["vllm", "serve", "--api-key", REDACTED, "--max-lora-rank", "8"]
    assert out["cmd"] == f"vllm serve --api-key={REDACTED} --port 8000"
    assert out["env"] == [{"name": "OPENAI_API_KEY", "value": REDACTED}, {"name": "PORT", "value": "8000"}]
    assert out["eos_token"] == "</s>"  # a tokenizer's token is no credential
    assert HF_TOKEN not in out["note"] and "sk-proj" not in out["note"]
    assert out["MY_SECRET_THING"] == REDACTED
    assert out["quote"] == f"started with {REDACTED}"


def test_secrets_redacted_in_what_the_tui_shows(secret_rollout):
    import asyncio

    from doctor.core.settings import Settings
    from doctor.tui import make_app

    async def run() -> bytes:
        app = make_app([Path("r")], Settings())
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(600):
                await pilot.pause()
                if app.report is not None:
                    break
                await asyncio.sleep(0.05)
            assert app.report is not None
            from doctor.render import RenderContext
            from doctor.render.json_report import report_dict
            from probes import rule_registry

            # what the screens draw from: the app's report (facts, evidence, messages)
            return json.dumps(report_dict(app.report, RenderContext(rules=rule_registry()))).encode()

    _no_secret(asyncio.run(run()), "the TUI's report")
