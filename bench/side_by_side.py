"""The benches of `make bench` run on two checkouts in one go, interleaved, so a refactor's figures are compared
under the same machine load: before (a checkout given with --before, e.g. `git worktree add /tmp/before
<commit>`) and after (this checkout).

    .venv/bin/python bench/side_by_side.py --before /tmp/before [--rounds 2] [--quick]

Each bench script runs with PYTHONPATH pointing at its checkout (the script itself from that checkout too),
alternating before/after for --rounds rounds. Both checkouts are byte-compiled first: where
PYTHONDONTWRITEBYTECODE is set (as on these machines) every run would otherwise compile its sources again,
and a tree of more, smaller modules would look slower to start for a reason no installed copy has. Each
bench prints its own ratio against its peer (json.load, safetensors.numpy, pandas, `import peft`); the table
shows those ratio lines, and the best of the rounds, for both trees.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

AFTER = Path(__file__).resolve().parent.parent

# bench, its arguments (full, quick), and the summary lines to keep (regex), each with the number it leads with.
BENCHES = [
    (
        "startup.py",
        [],
        ["--runs", "5"],
        [r"doctor check median = ([\d.]+) s", r"import peft / doctor check = ([\d.]+)x"],
    ),
    (
        "adapter_scan.py",
        ["--no-peer", "--repeat", "3"],
        ["--no-peer", "--repeat", "1"],
        [r"ratio doctor / \(a\)\s+([\d.]+)x"],
    ),
    (
        "training_logs.py",
        ["--skip-tensorboard", "--repeat", "3"],
        ["--skip-tensorboard", "--repeat", "1", "--entries", "300000"],
        [r"ratio doctor/json.load = ([\d.]+)x"],
    ),
    ("eval_slices.py", [], ["--rows", "200000"], [r"ratio: doctor is ([\d.]+)x faster"]),
]
# Whether a bigger number is better for that summary line.
HIGHER_IS_BETTER = {r"import peft / doctor check": True, r"ratio: doctor is": True}


def run(tree: Path, script: str, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, str(tree / "bench" / script), *args], cwd=tree, env=env, capture_output=True, text=True
    )
    return proc.stdout + (f"\n[exit {proc.returncode}] {proc.stderr[-400:]}" if proc.returncode else "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True, help="the other checkout (the code before the change)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (minutes, not tens of minutes)")
    ap.add_argument("--only", action="append", help="run only these benches (e.g. startup.py)")
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": AFTER}
    for tree in trees.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", "doctor", "probes"], cwd=tree, capture_output=True)
    for script, full, quick, patterns in BENCHES:
        if args.only and script not in args.only:
            continue
        got: dict[str, dict[str, list[float]]] = {name: {p: [] for p in patterns} for name in trees}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))  # ABBA: neither side always runs first
            for name in order:
                out = run(trees[name], script, quick if args.quick else full)
                for p in patterns:
                    got[name][p] += [float(m) for m in re.findall(p, out)]
                if "[exit" in out:
                    print(f"{script} ({name}) failed:\n{out[-800:]}")
        print(f"== {script} {' '.join(quick if args.quick else full)}")
        for p in patterns:
            label = re.sub(r"\s*\(\[.*", "", p).replace("\\", "")
            higher = any(p.startswith(k) for k in HIGHER_IS_BETTER)
            best: dict[str, float] = {}
            for name in trees:
                v = got[name][p]
                best[name] = (max(v) if higher else min(v)) if v else float("nan")
                print(f"  {name:<6} {label:<40} all {', '.join(f'{x:g}' for x in v) or '-':<32} best {best[name]:g}")
            better = "higher" if higher else "lower"
            print(f"  after/before (best) = {best['after'] / best['before']:.2f}  ({better} is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
