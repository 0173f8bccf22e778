"""Start-up cost of `doctor check` on a small input, next to `python -c pass` and `import peft`.

Target: doctor check under 0.5 s here, a few tens of times faster than importing the training stack.
Run: .venv/bin/python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_wall(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = [
            {"loss": 2.0 - i * 0.01, "grad_norm": 1.0, "learning_rate": 2e-4, "epoch": i / 100, "step": i}
            for i in range(1, 101)
        ]
        (root / "trainer_state.json").write_text(json.dumps({"global_step": 100, "log_history": log}))
        py = sys.executable
        rows = [
            ("python -c pass", [py, "-c", "pass"]),
            ("doctor check (100-step trainer_state.json)", [py, "-m", "doctor", "check", str(root)]),
            ("python -c 'import peft'", [py, "-c", "import peft"]),
        ]
        results = {
            name: median_wall(cmd, args.runs if "peft" not in name else max(3, args.runs // 2), root)
            for name, cmd in rows
        }
    check = results[rows[1][0]]
    for name, t in results.items():
        print(f"{name:<46} median {t * 1000:8.1f} ms   {t / check:6.2f}x doctor check")
    print(f"\nimport peft / doctor check = {results[rows[2][0]] / check:.1f}x   (target: tens of times)")
    print(f"doctor check median = {check:.3f} s   (target: < 0.5 s)")


if __name__ == "__main__":
    main()
