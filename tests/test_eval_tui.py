"""The TUI shows findings from the new eval sources like the old ones: an aggregate-only lm-eval pair's
slice regression is listed, its message names the test, and its per-slice plot is drawn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from doctor.core.settings import Settings
from doctor.tui import make_app

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_sources import _lm_results
from test_tui_support import screen_text, settle

from doctor.tui.widgets.findings import FindingDetail, FindingsTable
from doctor.tui.widgets.plot_view import PlotView

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_lm_eval_regression_is_shown_with_its_plot(tmp_path: Path):
    _lm_results(tmp_path / "base" / "results_2026-01-01T10-00-00.json", "pretrained=m", 0.45, 0.35)
    _lm_results(tmp_path / "lora" / "results_2026-01-01T11-00-00.json", "pretrained=m,peft=lora", 0.38, 0.34)
    app = make_app([tmp_path], Settings())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(FindingsTable)
        f = table.current().finding
        assert f.rule == "EVL001" and f.locator.startswith("lora:gsm8k:")
        assert "unpaired z-test" in app.screen.query_one(FindingDetail).finding.message
        drawn = app.screen.query_one(PlotView).plain
        assert "Δ pts per slice" in drawn and "gsm8k" in drawn
        assert "EVL001" in screen_text(app)
