"""The check path must never import the training stack or Textual (peft alone costs ~8 s)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, ROLLOUTS

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "textual", "accelerate")

SCRIPT = """
import runpy, sys
sys.argv = ["doctor", "check", "--fail-on", "never", "--format", "json", *sys.argv[1:]]
try:
    runpy.run_module("doctor", run_name="__main__")
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def test_check_path_imports_nothing_heavy(tmp_path):
    target = ROLLOUTS if ROLLOUTS.is_dir() else tmp_path
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, proc.stderr
    assert line[-1] == "HEAVY=", f"check path imported: {line[-1][6:]}"
