"""The TUI's pure parts: plots drawn with plotext, row filtering/sorting, job formatting (no Textual)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import plotext

from doctor.tui.data import filter_rows, make_rows, parse_query, sort_rows
from doctor.tui.jobsview import EventDigest, comparison_lines, fmt_eta, progress_text
from doctor.tui.widgets import plots

sys.path.insert(0, str(Path(__file__).parent))
from test_tui_support import synthetic_report


def _points(n: int = 100):
    steps = list(range(1, n + 1))
    loss = [2 * math.exp(-s / 30) + 0.3 for s in steps]
    loss[59] = 5.0
    loss[89] = None
    grad = [1.0 for _ in steps]
    grad[89] = None
    return {"steps": steps, "loss": loss, "grad_norm": grad, "lr": [2e-4] * n}


def test_training_plot_marks_spikes_and_non_finite_steps():
    pts = _points()
    out = plotext.uncolorize(plots.training_plot(pts, [60, 90], 70, 24))
    assert "loss" in out and "grad norm" in out and "learning rate (×1e-4)" in out
    assert "●" in out  # the spike at step 60, on the curve
    assert "✗" in out  # the non-finite step 90
    assert plots.classify_marks(pts, [60, 90]) == ([60], [90])
    assert plots.marks_caption(pts, [60, 90]) == "● flagged steps 60   ✗ non-finite at 90"


def test_value_axis_labels_are_low_middle_high_of_the_data():
    """Each panel's y labels are the data's low, middle and high (plotext's own ticks drifted: the fresh-user
    trial read a bottom label 0.085 under 8.1e9 on a 4-row panel and took the spacing for a scale)."""
    steps = list(range(1, 41))
    grad = [0.085 + i * 0.01 for i in range(20)] + [4e8 * i for i in range(1, 21)]
    out = plotext.uncolorize(plots.training_plot({"steps": steps, "grad_norm": grad}, [], 70, 8))
    labels = [ln.split("┤")[0].strip() for ln in out.splitlines() if "┤" in ln]
    assert labels == ["8.0e9", "4.0e9", "0.085"], out
    # A tiny wiggle on a large value gets the digits that tell its ticks apart.
    flat = [1.0001 + 0.0002 * (i % 2) for i in range(40)]
    out = plotext.uncolorize(plots.training_plot({"steps": steps, "loss": flat}, [], 70, 8))
    assert [ln.split("┤")[0].strip() for ln in out.splitlines() if "┤" in ln] == ["1.0003", "1.0002", "1.0001"]


def test_training_plot_tolerates_missing_series():
    assert plots.training_plot({"steps": [1, 2]}, [], 40, 10).startswith("no training curve")
    out = plotext.uncolorize(plots.training_plot({"steps": [1, 2, 3], "loss": [1.0, 0.5, 0.4]}, ["x", None], 40, 10))
    assert "loss" in out and "grad norm" not in out
    assert plots.plot_kind({"points": {"steps": [1], "loss": [None]}}) is None


def test_slices_plot_draws_interval_per_slice():
    rows = [
        {"slice": "arith", "n": 50, "delta": 0.12, "ci_low": 0.05, "ci_high": 0.2},
        {"slice": "safety", "n": 50, "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1},
        {"slice": "no-ci", "delta": 0.01},
        {"slice": "broken"},
    ]
    out = plotext.uncolorize(plots.slices_plot(rows, 60, 14))
    assert "arith" in out and "safety" in out and "no-ci" in out and "broken" not in out
    assert "─" in out and "●" in out
    assert plots.plot_kind({"slices": rows}) == "slices"
    assert plots.slices_plot([], 40, 10).startswith("no per-slice")


def test_layers_plot_from_evidence_and_from_facts():
    ev = {"module": "q_proj", "layers": [0, 1, 2, 3], "update_norm": [0.1, 0.2, 2.5, 0.2], "median": 0.2}
    out = plotext.uncolorize(plots.layers_plot(ev, None, 60, 12))
    assert "update norm" in out and "█" in out
    facts = {
        "layers": [{"layer": i % 4, "module": "q", "update_norm": 0.1 * i, "effective_rank": 2.0} for i in range(8)]
    }
    t = plots.layer_table({}, facts)
    assert t["layer"] == [0.0, 1.0, 2.0, 3.0] and t["effective_rank"] == [2.0] * 4
    assert "effective rank" in plotext.uncolorize(plots.layers_plot({}, facts, 60, 16))
    assert plots.plot_kind({}, {"layers": [{"layer": None}]}) is None
    assert plots.plot_kind({"effective_rank": [1.0, 2.0], "modules": ["a", "b"]}) == "layers"


def test_plot_for_never_raises():
    assert plots.plot_for({"points": {"steps": [1, 2], "loss": ["a", "b"]}}, None, 40, 10) is None
    assert plots.plot_for({}, None, 40, 10) is None
    assert "no loss" in plots.loss_curve([], [], 40, 10)
    assert "loss" in plotext.uncolorize(plots.loss_curve([1, 2, 3], [3.0, 2.0, 1.5], 40, 10))


def test_filter_and_sort_rows():
    rows = make_rows(synthetic_report(300).findings, Path("/synthetic"))
    assert len(filter_rows(rows, "")) == 300
    assert {r.severity for r in filter_rows(rows, "sev:error")} == {"error"}
    assert {r.rule for r in filter_rows(rows, "rule:TRN001")} == {"TRN001"}
    assert all("run07" in r.artifact for r in filter_rows(rows, "run07"))
    both = filter_rows(rows, "sev:w run07 spike")
    assert both and all(r.severity == "warning" and "run07" in r.artifact for r in both)
    assert parse_query("sev:e rule:adp* words") == (["words"], {"error"}, ["ADP*"])
    ranked = sort_rows(rows)
    assert [r.severity for r in ranked[:1]] == ["error"] and ranked[-1].severity == "info"
    assert sort_rows(rows, "rule")[0].rule == "TRN001"
    assert sort_rows(rows, "rule", reverse=True)[0].rule == "TRN040"


def test_job_formatting():
    assert fmt_eta(None) == "—" and fmt_eta(42) == "42s" and fmt_eta(125) == "2m05s" and fmt_eta(7300) == "2h01m"
    assert progress_text(5, 10, "running") == "█████░░░░░  50%"
    assert progress_text(0, 0, "succeeded").endswith("100%")
    d = EventDigest()
    lines = d.feed(
        [
            {"seq": 1, "event": "log", "message": "started"},
            {"seq": 2, "event": "metrics", "step": 1, "loss": 2.5},
            {"seq": 3, "event": "progress", "step": 1},
            {"seq": 4, "event": "error", "message": "boom"},
        ]
    )
    assert d.seq == 4 and d.loss == [2.5] and lines[0] == "started" and lines[-1] == "error: boom"
    rows = comparison_lines({"before": {"accuracy": 0.5, "slices": {}}, "after": {"accuracy": 0.75}})
    assert rows == [("accuracy", "0.5", "0.75", "+0.25")]
    assert comparison_lines({"accuracy": {"before": 1, "after": 2}}) == [("accuracy", "1", "2", "+1")]


def test_cli_registers_tui_and_rejects_missing_path(capsys):
    from doctor import cli
    from doctor.cli import tui as cli_tui

    args = cli.build_parser().parse_args(["tui", "fixtures/rollouts"])
    assert args.handler is cli_tui.run and [str(p) for p in args.paths] == ["fixtures/rollouts"]
    assert cli.main(["tui", "/no/such/rollout"]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_slices_plot_labels_stay_tellable_when_names_share_a_prefix():
    """lm-eval slices are task · metric: cut at 14 characters, strict-match and flexible-extract read alike."""
    names = ["gsm8k · exact_match,strict-match", "gsm8k · exact_match,flexible-extract", "arc_easy · acc,none"]
    rows = [{"slice": n, "delta": -0.06, "ci_low": -0.09, "ci_high": -0.02} for n in names]
    out = plotext.uncolorize(plots.slices_plot(rows, 70, 12))
    labels = [line.split("┤")[0].strip() for line in out.splitlines() if "┤" in line]
    assert len(set(labels)) == 3, labels
    assert plots._slice_labels(["arith", "safety"]) == ["arith", "safety"]  # short names unchanged


def test_slices_plot_axis_is_in_points_like_the_findings():
    """Findings say "-20.0 pts"; the axis said -0.2."""
    rows = [{"slice": "safety", "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1}]
    out = plotext.uncolorize(plots.slices_plot(rows, 60, 12))
    ticks = [float(t) for t in out.splitlines()[-1].split()]
    assert "Δ pts per slice" in out and min(ticks) <= -25 and max(ticks) >= -15, ticks
