"""Shared test helpers: run the CLI in-process or in a fresh interpreter, locate the demo world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests run on shared 2-core machines (CI, sessions beside each other): slow input generation or a
# slow example is the machine's load, not a failure. `HYPOTHESIS_PROFILE=long` runs more examples.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", parent=settings.get_profile("default"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
ROLLOUTS = FIXTURES / "rollouts"
SHARED = REPO.parent / "shared"


def run_doctor(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m doctor ARGS` in a fresh interpreter, as a user or CI would run it."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "doctor", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_json(*args: str, cwd: Path | None = None) -> tuple[int, dict]:
    proc = run_doctor(*args, "--format", "json", cwd=cwd)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def rollouts() -> Path:
    if not ROLLOUTS.is_dir():
        pytest.skip("demo world not built (python fixtures/build.py)")
    return ROLLOUTS
