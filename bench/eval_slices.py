"""Per-slice paired comparison at scale: doctor's eval-slice probe vs a straightforward pandas bootstrap.

Workload: 1,000,000 examples x 3 variants (base + 2 candidates) x 50 slices, binary scores, one CSV per
variant, 1,000 bootstrap resamples per slice and candidate.

- doctor: `doctor check DIR` in a fresh interpreter (falls back to the engine with only the eval-slice
  probe when the CLI cannot start); reads with pyarrow, pairs by id with integer codes, and bootstraps
  the exact multinomial over per-slice (-1, 0, +1) counts + McNemar exact p.
- peer: pandas.read_csv, merge baseline/candidate on id, groupby("slice").apply(bootstrap of the
  paired differences by index resampling) — the code most people would write.

Each side runs in its own subprocess; wall time and peak RSS (ru_maxrss) are printed with the ratio.
Run: .venv/bin/python bench/eval_slices.py [--rows 1000000] [--slices 50] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
mode, folder, resamples = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if mode == "probe":
    from pathlib import Path
    from doctor.core.settings import Settings, parse_settings
    from doctor.engine import scan
    from probes.eval_slices import PROBES
    s = parse_settings({{"thresholds": {{"EVL001": {{"resamples": resamples}}}}}})
    rep = scan([Path(folder)], s, probes=PROBES)
    out = {{"findings": len(rep.findings)}}
elif mode == "pandas":
    import glob
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    frames = {{}}
    for p in sorted(glob.glob(folder + "/eval/*.csv")):
        df = pd.read_csv(p)
        frames[df["variant"].iloc[0]] = df
    base = frames.pop("base")
    out = {{}}
    for name, cand in frames.items():
        m = base.merge(cand, on="id", suffixes=("_b", "_c"))
        m["diff"] = m["score_c"] - m["score_b"]

        def boot(g):
            d = g["diff"].to_numpy()
            idx = rng.integers(0, len(d), size=(resamples, len(d)))
            means = d[idx].mean(axis=1)
            lo, hi = np.quantile(means, [0.025, 0.975])
            return pd.Series({{"n": len(d), "delta": d.mean(), "ci_low": lo, "ci_high": hi}})

        res = m.groupby("slice_b").apply(boot)
        out[name] = int((res["ci_high"] < 0).sum())
else:
    raise SystemExit("unknown mode")
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall": wall, "rss_mb": rss, "out": out}}))
"""


def make_world(folder: Path, rows: int, slices: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    (folder / "eval").mkdir(parents=True)
    ids = pa.array([f"ex-{i:07d}" for i in range(rows)])
    sl = rng.integers(0, slices, rows)
    names = np.array([f"slice{k:02d}" for k in range(slices)])
    p_base = rng.uniform(0.4, 0.9, slices)[sl]
    base = rng.random(rows) < p_base
    variants = {"base": base}
    # lora: small wobble everywhere, a real 8-point drop on 3 slices; qlora: one 5-point drop
    for name, drops in (("lora", {3: 0.08, 17: 0.08, 41: 0.08}), ("qlora", {9: 0.05})):
        flip = rng.random(rows) < 0.05  # 5% of answers change at random
        cand = np.where(flip, rng.random(rows) < p_base, base)
        for k, d in drops.items():
            m = (sl == k) & cand
            cand = np.where(m & (rng.random(rows) < d / p_base), False, cand)
        variants[name] = cand
    for name, sc in variants.items():
        tbl = pa.table(
            {
                "id": ids,
                "slice": pa.array(names[sl]),
                "score": pa.array(sc.astype(np.int8)),
                "variant": pa.array([name] * rows),
            }
        )
        pacsv.write_csv(tbl, folder / "eval" / f"{name}.csv")
    (folder / "rollout.toml").write_text('[rollout]\nname = "bench"\n[eval]\nbaseline_variant = "base"\n')


def run_child(mode: str, folder: Path, resamples: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(REPO)), mode, str(folder), str(resamples)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_doctor_cli(folder: Path) -> dict | None:
    """`doctor check` wall time as a user runs it (None when the CLI cannot run here)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", str(folder), "--format", "json", "--fail-on", "never"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.startswith("{"):
        return None
    rep = json.loads(proc.stdout)
    return {"wall": wall, "findings": len(rep.get("findings", []))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--slices", type=int, default=50)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench-rollout"
        t0 = time.perf_counter()
        make_world(folder, args.rows, args.slices)
        size = sum(p.stat().st_size for p in (folder / "eval").iterdir()) / 1e6
        print(
            f"workload: {args.rows:,} rows x 3 variants x {args.slices} slices, {args.resamples} resamples "
            f"({size:.0f} MB of CSV, built in {time.perf_counter() - t0:.1f} s)"
        )
        cli = run_doctor_cli(folder)
        ours = run_child("probe", folder, args.resamples)
        peer = run_child("pandas", folder, args.resamples)
        if cli:
            print(f"doctor check (CLI, fresh interpreter)      {cli['wall']:8.2f} s   findings {cli['findings']}")
        else:
            print("doctor check (CLI)                          unavailable here; timing the engine instead")
        print(
            f"doctor eval-slice probe (engine.scan)      {ours['wall']:8.2f} s   peak RSS {ours['rss_mb']:7.0f} MB"
            f"   findings {ours['out']['findings']}"
        )
        print(
            f"pandas groupby-apply bootstrap (peer)      {peer['wall']:8.2f} s   peak RSS {peer['rss_mb']:7.0f} MB"
            f"   slices with CI < 0: {peer['out']}"
        )
        best = cli["wall"] if cli else ours["wall"]
        print(
            f"ratio: doctor is {peer['wall'] / best:.1f}x faster than the peer "
            f"(engine-only {peer['wall'] / ours['wall']:.1f}x); memory {peer['rss_mb'] / ours['rss_mb']:.1f}x less"
        )


if __name__ == "__main__":
    main()
