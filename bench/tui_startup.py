"""TUI start-up and responsiveness.

1. Launch → first paint, and launch → complete scan of the demo world (fixtures/rollouts), measured in
   a fresh interpreter (imports included) with the app running headless. Target: first paint < 1 s.
2. The findings table with 10,000 synthetic findings: time to load, filter and sort (Pilot).

Prints one line per number and a ratio against the target. Run: .venv/bin/python bench/tui_startup.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "fixtures" / "rollouts"
FIRST_PAINT_TARGET_S = 1.0
RUNS = 5

_LAUNCH = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import asyncio, json, sys
    from pathlib import Path
    from doctor.tui import make_app

    async def main():
        app = make_app([Path(sys.argv[1])])
        app._t0 = t0   # count imports too
        async with app.run_test(size=(120, 40)) as pilot:
            while app.first_paint_s is None:
                await asyncio.sleep(0.005)
            while app.report is None and app.scan_error is None:
                await asyncio.sleep(0.005)
            scan_done = time.perf_counter() - t0
            heavy = [m for m in ("torch", "transformers", "peft", "bitsandbytes") if m in sys.modules]
            print(json.dumps({"first_paint": app.first_paint_s, "scan_done": scan_done,
                              "findings": len(app.report.findings) if app.report else 0, "heavy": heavy}))

    asyncio.run(main())
    """
)


def launch_once(target: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCH, str(target)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def table_10k() -> dict:
    import asyncio
    import time

    sys.path.insert(0, str(REPO / "tests"))
    from test_tui_support import synthetic_report

    from doctor.core.settings import Settings
    from doctor.tui import make_app
    from doctor.tui.widgets.findings import FindingsTable

    out: dict[str, float] = {}

    async def main() -> None:
        report = synthetic_report(10_000)
        t0 = time.perf_counter()
        app = make_app([Path("/synthetic")], Settings(), report=report)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.report is None:
                await pilot.pause()
            table = app.screen.query_one(FindingsTable)
            while table.row_count < 10_000:
                await pilot.pause()
            out["load_10k"] = time.perf_counter() - t0
            for name, fn in (
                ("filter_10k", lambda: table.set_query("sev:error run07")),
                ("clear_filter_10k", lambda: table.set_query("")),
                ("sort_title_10k", lambda: table.set_sort("title")),
                ("sort_rule_rev_10k", lambda: table.set_sort("rule", True)),
            ):
                t1 = time.perf_counter()
                fn()
                await pilot.pause()
                out[name] = time.perf_counter() - t1
            t1 = time.perf_counter()
            for _ in range(50):
                table.action_cursor(1)
                await pilot.pause()
            out["cursor_step_10k"] = (time.perf_counter() - t1) / 50

    asyncio.run(main())
    return out


def main() -> None:
    if not DEMO.is_dir():
        raise SystemExit(f"{DEMO} missing: build the demo world first (make fixtures)")
    runs = [launch_once(DEMO) for _ in range(RUNS)]
    fp = statistics.median(r["first_paint"] for r in runs)
    sd = statistics.median(r["scan_done"] for r in runs)
    print(f"tui first paint (launch → first frame, imports included): {fp:.3f} s  (median of {RUNS})")
    print(
        f"  ratio vs target {FIRST_PAINT_TARGET_S:.1f} s: {fp / FIRST_PAINT_TARGET_S:.2f}x",
        "OK" if fp < FIRST_PAINT_TARGET_S else "SLOW",
    )
    print(f"tui complete scan of {DEMO.relative_to(REPO)}: {sd:.3f} s  ({runs[0]['findings']} findings)")
    print(f"  heavy modules imported by the app: {runs[0]['heavy'] or 'none'}")
    t = table_10k()
    for k, v in t.items():
        print(f"table {k}: {v * 1000:.1f} ms")
    frame = 1 / 60
    print(
        f"  filter 10k vs one 60 Hz frame: {t['filter_10k'] / frame:.1f}x;",
        f"sort: {t['sort_title_10k'] / frame:.1f}x",
    )


if __name__ == "__main__":
    main()
