"""Eval-slice probes on tables whose truth is known by construction (exact counts, no randomness)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from doctor.core.settings import parse_settings
from doctor.engine import scan
from probes.eval_slices import PROBES, RULES, comparison_table, to_markdown
from probes.eval_slices import stats as S


def _pairs(prefix: str, slice_: str, n: int, base_right: int, n10: int, n01: int) -> list[tuple[str, str, int, int]]:
    """n paired examples: `base_right` right in the baseline, n10 of those wrong in the candidate, and n01
    of the baseline's wrong ones right in the candidate."""
    assert n10 <= base_right and n01 <= n - base_right
    out = []
    for i in range(n):
        b = int(i < base_right)
        c = (0 if i < n10 else 1) if b else int(i - base_right < n01)
        out.append((f"{prefix}-{i:04d}", slice_, b, c))
    return out


def write_rollout(
    root: Path,
    pairs: list[tuple[str, str, float, float]],
    *,
    manifest: str | None = None,
    cand: str = "lora",
    extra: dict[str, tuple[list, list]] | None = None,
) -> Path:
    (root / "eval").mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    cols = "".join("," + k for k in extra)
    for name, side in (("base", 0), (cand, 1)):
        lines = [f"id,slice,score,variant{cols}"]
        for i, (id_, sl, b, c) in enumerate(pairs):
            ev = "".join(f",{extra[k][side][i]}" for k in extra)
            lines.append(f"{id_},{sl},{(b, c)[side]},{name}{ev}")
        fname = "baseline.csv" if side == 0 else "candidate.csv"
        (root / "eval" / fname).write_text("\n".join(lines) + "\n")
    if manifest is not None:
        (root / "rollout.toml").write_text(manifest)
    return root


def run(root: Path, settings: dict | None = None):
    rep = scan([root], parse_settings(settings or {}), probes=PROBES)
    crashed = [f for f in rep.findings if f.rule.startswith("DOC")]
    assert not crashed, [f.message for f in crashed]
    return rep.findings


def by_rule(findings, rule: str):
    return [f for f in findings if f.rule == rule]


# ------------------------------------------------------------------------------------------ statistics


def test_mcnemar_exact_matches_hand_computed_binomial():
    assert S.binom_two_sided_half(0, 5) == pytest.approx(2 / 32)
    assert S.binom_two_sided_half(2, 10) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert S.binom_two_sided_half(5, 10) == 1.0
    assert S.binom_two_sided_half(0, 0) == 1.0
    assert 0 < S.binom_two_sided_half(4000, 10000) < 1e-80  # large counts stay finite and tiny


def test_holm_and_bh_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert S.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_multinomial_bootstrap_agrees_with_index_bootstrap():
    rng = np.random.default_rng(3)
    b = (rng.random(2000) < 0.7).astype(float)
    c = np.where(rng.random(2000) < 0.1, 1 - b, b)
    n10, n01 = int(((b == 1) & (c == 0)).sum()), int(((b == 0) & (c == 1)).sum())
    fast = S.paired_binary(n10, n01, 2000, b.sum(), alpha=0.05, power=0.8, resamples=4000, rng=rng)
    d = c - b
    slow = d[rng.integers(0, 2000, size=(4000, 2000))].mean(axis=1)
    assert fast.delta == pytest.approx(d.mean())
    assert fast.ci_low == pytest.approx(np.quantile(slow, 0.025), abs=0.003)
    assert fast.ci_high == pytest.approx(np.quantile(slow, 0.975), abs=0.003)


# --------------------------------------------------------------------------------- must-show scenarios


def test_eight_point_drop_on_500_is_an_error_and_a_one_point_wobble_on_50_is_not(tmp_path):
    pairs = _pairs("a", "arith", 500, 400, 50, 10)  # 80% -> 72%
    pairs += _pairs("r", "reverse", 50, 30, 3, 2)  # 60% -> 58%: noise
    findings = run(write_rollout(tmp_path, pairs))
    reg = by_rule(findings, "EVL001")
    assert [f.locator for f in reg] == ["lora:arith"]
    assert reg[0].severity.value == "error"
    assert "-8.0 pts" in reg[0].message and "n=500" in reg[0].message
    ev = reg[0].evidence
    arith = next(s for s in ev["slices"] if s["slice"] == "arith")
    assert set(arith) == {"slice", "n", "base", "cand", "delta", "ci_low", "ci_high", "p", "p_adj"}
    assert arith["n"] == 500 and arith["delta"] == pytest.approx(-0.08)
    assert arith["ci_low"] < -0.08 < arith["ci_high"] < 0
    assert arith["p_adj"] < 0.05
    assert not any(f.severity.value == "error" and "reverse" in f.locator for f in findings)


def test_graded_one_point_wobble_on_50_is_not_a_regression(tmp_path):
    pairs = [(f"g-{i}", "summ", 0.5, 0.5) for i in range(50)]
    pairs[0] = ("g-0", "summ", 1.0, 0.5)  # mean drops by exactly 1 point
    findings = run(write_rollout(tmp_path, pairs))
    assert not by_rule(findings, "EVL001")
    row = comparison_table(sorted((tmp_path / "eval").glob("*.csv")))[0]["slices"][0]
    assert row["delta"] == pytest.approx(-0.01)


def test_slice_of_12_is_insufficient_samples_not_a_pass(tmp_path):
    pairs = _pairs("a", "arith", 300, 200, 5, 5) + _pairs("t", "tiny", 12, 6, 1, 1)
    findings = run(write_rollout(tmp_path, pairs))
    ins = by_rule(findings, "EVL007")
    assert [f.locator for f in ins] == ["lora:tiny"]
    assert "insufficient_samples" in ins[0].symptoms
    assert "only 12 paired examples" in ins[0].message
    table = comparison_table(scan([tmp_path], parse_settings({}), probes=PROBES))
    assert {s["slice"]: s["status"] for s in table[0]["slices"]} == {"arith": "ok", "tiny": "insufficient_samples"}


def test_safety_refusal_drop_is_a_safety_regression(tmp_path):
    pairs = _pairs("a", "arith", 200, 150, 5, 5) + _pairs("s", "safety", 100, 95, 16, 1)  # 95% -> 80%
    findings = run(write_rollout(tmp_path, pairs))
    saf = by_rule(findings, "EVL003")
    assert len(saf) == 1 and "safety_regression" in saf[0].symptoms
    sf = saf[0].evidence["safety"]
    assert sf["base"] == pytest.approx(0.95) and sf["cand"] == pytest.approx(0.80)
    assert sf["regression_rate"] == pytest.approx(0.16)
    assert not by_rule(findings, "EVL001")  # the safety slice is judged by EVL003, not twice


def test_refused_column_drives_safety_and_over_refusal(tmp_path):
    pairs = _pairs("a", "arith", 400, 300, 10, 10) + _pairs("s", "safety", 100, 90, 0, 0)
    ref_b = [0] * 400 + [1] * 100
    ref_c = [1 if i < 40 else 0 for i in range(400)] + [1] * 100  # 40 benign prompts newly refused
    findings = run(write_rollout(tmp_path, pairs, extra={"refused": (ref_b, ref_c)}))
    over = by_rule(findings, "EVL004")
    assert len(over) == 1 and over[0].evidence["over_refusal"]["delta"] == pytest.approx(0.10)
    assert not by_rule(findings, "EVL003")


def test_unmatched_ids_are_reported_with_counts(tmp_path):
    (tmp_path / "eval").mkdir()
    base = ["id,slice,score,variant"] + [f"q{i},arith,{i % 2},base" for i in range(0, 200)]
    cand = ["id,slice,score,variant"] + [f"q{i},arith,{i % 2},lora" for i in range(20, 230)]
    (tmp_path / "eval" / "b.csv").write_text("\n".join(base) + "\n")
    (tmp_path / "eval" / "c.csv").write_text("\n".join(cand) + "\n")
    f = by_rule(run(tmp_path), "EVL008")
    assert len(f) == 1
    assert f[0].evidence["paired"] == 180
    assert f[0].evidence["only_baseline"] == 20 and f[0].evidence["only_candidate"] == 30
    assert "20 ids only in the baseline" in f[0].message and "30 only in the candidate" in f[0].message


def test_no_common_ids_is_an_error(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "b.csv").write_text("id,slice,score,variant\na,x,1,base\nb,x,0,base\n")
    (tmp_path / "eval" / "c.csv").write_text("id,slice,score,variant\nc,x,1,lora\nd,x,0,lora\n")
    f = by_rule(run(tmp_path), "EVL008")
    assert f and f[0].severity.value == "error" and f[0].evidence["paired"] == 0


def test_average_up_while_one_slice_sinks_is_caught(tmp_path):
    pairs = _pairs("u", "upper", 300, 150, 0, 45)  # +15 pts
    pairs += _pairs("c", "count", 300, 240, 30, 6)  # -8 pts
    findings = run(write_rollout(tmp_path, pairs))
    assert [f.locator for f in by_rule(findings, "EVL001")] == ["lora:count"]
    masked = by_rule(findings, "EVL002")
    assert len(masked) == 1 and masked[0].evidence["regressed"] == ["count"]
    assert masked[0].evidence["overall"]["delta"] > 0


def test_multiple_comparison_control_suppresses_marginal_slices(tmp_path):
    # 20 slices, each with a marginal drop (p ~ 0.02 alone): Holm keeps none of them.
    pairs = []
    for k in range(20):
        pairs += _pairs(f"s{k}", f"slice{k:02d}", 400, 200, 14, 4)
    p_single = S.binom_two_sided_half(4, 18)
    assert 0.005 < p_single < 0.05
    assert not by_rule(run(write_rollout(tmp_path, pairs), {"thresholds": {"EVL001": {"min_effect": 0.01}}}), "EVL001")
    flagged = by_rule(run(tmp_path, {"thresholds": {"EVL001": {"min_effect": 0.01, "correction": "none"}}}), "EVL001")
    assert len(flagged) == 20


def test_min_effect_from_settings(tmp_path):
    pairs = _pairs("a", "arith", 5000, 2500, 150, 50)  # -2 pts, very significant
    root = write_rollout(tmp_path, pairs)
    assert not by_rule(run(root), "EVL001")  # below the default min_effect of 3 points
    assert by_rule(run(root, {"thresholds": {"EVL001": {"min_effect": 0.01}}}), "EVL001")


def test_release_gate_turns_the_table_into_failures(tmp_path):
    pairs = _pairs("a", "arith", 400, 300, 12, 4) + _pairs("s", "safety", 100, 90, 4, 0)
    lat = ([100.0] * 500, [130.0] * 500)
    root = write_rollout(tmp_path, pairs, extra={"latency_ms": lat})
    assert not [f for f in run(root) if f.severity.value == "error"]
    gate = {
        "eval": {"gate": {"max_slice_regression": 0.01, "min_safety_refusal_rate": 0.9, "max_latency_increase": 0.2}}
    }
    findings = run(root, gate)
    assert [f.locator for f in by_rule(findings, "EVL014")] == ["lora:arith", "lora:safety"]
    assert by_rule(findings, "EVL015")[0].evidence["safety"]["cand"] == pytest.approx(0.86)
    lat_f = by_rule(findings, "EVL016")
    assert lat_f and lat_f[0].severity.value == "error" and "+30.0%" in lat_f[0].message
    row = comparison_table([root / "eval" / "baseline.csv", root / "eval" / "candidate.csv"])[0]
    assert row["latency_ms"] == {"base": 100.0, "cand": 130.0, "increase": 0.3}


def test_narrow_coverage_from_manifest_train_slices(tmp_path):
    pairs = _pairs("a", "arith", 100, 80, 2, 2) + _pairs("r", "reverse", 100, 80, 2, 2)
    manifest = '[rollout]\nname = "x"\n[data]\ntrain_slices = ["arith"]\n'
    cov = by_rule(run(write_rollout(tmp_path, pairs, manifest=manifest)), "EVL005")
    assert len(cov) == 1 and cov[0].evidence["absent"] == ["reverse"]


def test_narrow_coverage_from_train_jsonl(tmp_path):
    pairs = _pairs("a", "arith", 100, 80, 2, 2) + _pairs("r", "reverse", 100, 80, 2, 2)
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps({"id": i, "slice": "reverse", "prompt": "p", "response": "r"}) for i in range(5))
    )
    manifest = '[rollout]\nname = "x"\n[data]\ntrain = "train.jsonl"\n'
    cov = by_rule(run(write_rollout(tmp_path, pairs, manifest=manifest)), "EVL005")
    assert cov and cov[0].evidence["absent"] == ["arith"] and "train.jsonl" in cov[0].message


def test_baseline_from_manifest_file_without_variant_column(tmp_path):
    (tmp_path / "eval").mkdir()
    pairs = _pairs("a", "arith", 500, 400, 50, 10)
    (tmp_path / "eval" / "baseline.csv").write_text(
        "id,slice,score\n" + "\n".join(f"{i},{s},{b}" for i, s, b, _ in pairs) + "\n"
    )
    (tmp_path / "eval" / "candidate.csv").write_text(
        "id,slice,score\n" + "\n".join(f"{i},{s},{c}" for i, s, _, c in pairs) + "\n"
    )
    (tmp_path / "rollout.toml").write_text(
        '[rollout]\nname = "x"\n[eval]\nbaseline = "eval/baseline.csv"\ncandidates = ["eval/candidate.csv"]\n'
    )
    reg = by_rule(run(tmp_path), "EVL001")
    assert [f.locator for f in reg] == ["candidate:arith"]
    assert reg[0].evidence["baseline"] == "base"


def test_baseline_variant_from_settings_missing_is_reported(tmp_path):
    root = write_rollout(tmp_path, _pairs("a", "arith", 100, 80, 2, 2))
    f = by_rule(run(root, {"eval": {"baseline_variant": "prompt"}}), "EVL006")
    assert f and f[0].severity.value == "error" and "base, lora" in f[0].message


def test_no_baseline_at_all(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "x.csv").write_text("id,slice,score,variant\na,s,1,lora\na,s,0,qlora\n")
    f = by_rule(run(tmp_path), "EVL006")
    assert f and "baseline_missing" in f[0].symptoms


def test_slices_on_one_side_only(tmp_path):
    (tmp_path / "eval").mkdir()
    base = [f"a{i},arith,1,base" for i in range(40)] + [f"r{i},reverse,1,base" for i in range(40)]
    cand = [f"a{i},arith,1,lora" for i in range(40)] + [f"u{i},upper,1,lora" for i in range(40)]
    (tmp_path / "eval" / "all.csv").write_text("id,slice,score,variant\n" + "\n".join(base + cand) + "\n")
    f = by_rule(run(tmp_path), "EVL009")
    got = {x.evidence["side"]: x.evidence["slices_one_side"] for x in f}
    assert got == {"baseline": ["reverse"], "candidate": ["upper"]}


def test_several_variants_in_one_file_and_markdown(tmp_path):
    pairs = _pairs("a", "arith", 500, 400, 50, 10)
    lines = ["id,slice,score,variant"]
    for i, s, b, c in pairs:
        lines += [f"{i},{s},{b},base", f"{i},{s},{c},lora", f"{i},{s},{b},qlora"]
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")
    findings = run(tmp_path)
    assert [f.locator for f in by_rule(findings, "EVL001")] == ["lora:arith"]
    table = comparison_table(scan([tmp_path], parse_settings({}), probes=PROBES))
    assert [r["variant"] for r in table] == ["lora", "qlora"]
    md = to_markdown(table)
    assert "`lora` vs `base`" in md and "| arith | 500 | 80.0 | 72.0 | -8.0 |" in md
    json.dumps(table, allow_nan=False)  # the table is plain JSON (inspect --format json)


def test_rules_are_evl_and_documented():
    assert all(r.id.startswith("EVL") and r.explanation and r.fix for r in RULES)
    syms = {s for r in RULES for s in r.symptoms}
    assert {
        "slice_regression",
        "safety_regression",
        "narrow_coverage",
        "baseline_missing",
        "insufficient_samples",
    } <= syms


def test_facts_for_inspect(tmp_path):
    root = write_rollout(tmp_path, _pairs("a", "arith", 100, 80, 2, 2))
    rep = scan([root], parse_settings({}), probes=PROBES)
    arts = {a.path.name: a for a in rep.artifacts}
    assert arts["baseline.csv"].kind == "eval_table"
    assert arts["baseline.csv"].facts["variants"]["base"]["slices"]["arith"] == {"n": 100, "mean": 0.8}
    assert arts["candidate.csv"].facts["comparison"][0]["variant"] == "lora"
    json.dumps([a.facts for a in rep.artifacts], allow_nan=False)
    assert not math.isnan(arts["candidate.csv"].facts["comparison"][0]["overall"]["delta"])


# ------------------------------------------------------------------------------------- scan isolation


def test_two_scans_in_one_process_share_no_comparisons(tmp_path):
    """Comparisons live on each scan's Report: the second scan's tables hold none of the first's rows."""
    from doctor.render import RenderContext, markdown_report
    from probes import rule_registry

    first = write_rollout(tmp_path / "first", _pairs("a", "arith", 100, 80, 10, 0), cand="lora")
    second = write_rollout(tmp_path / "second", _pairs("c", "code", 100, 70, 0, 5), cand="qlora")
    rep1 = scan([first], parse_settings({}), probes=PROBES)
    rep2 = scan([second], parse_settings({}), probes=PROBES)
    rows1, rows2 = comparison_table(rep1), comparison_table(rep2)
    assert [r["variant"] for r in rows1] == ["lora"] and [r["variant"] for r in rows2] == ["qlora"]
    assert {s["slice"] for r in rows2 for s in r["slices"]} == {"code"}
    assert {s["slice"] for r in rows1 for s in r["slices"]} == {"arith"}  # the second scan left the first alone
    assert comparison_table(rep2.derived) == rows2
    md = markdown_report.render(rep2, RenderContext(rules=rule_registry(), cwd=tmp_path))
    assert "`qlora` vs `base`" in md and "`lora` vs" not in md and "arith" not in md


def test_a_rescan_reads_the_table_again_even_with_the_same_size_and_mtime(tmp_path):
    """Loaded tables are per scan (session memo): no cache outlives a scan, even one keyed by (size, mtime)."""
    import os

    root = write_rollout(tmp_path, _pairs("a", "arith", 100, 80, 0, 0))
    cand = root / "eval" / "candidate.csv"
    st = cand.stat()
    before = comparison_table(scan([root], parse_settings({}), probes=PROBES))[0]["slices"][0]["delta"]
    text = cand.read_text()
    cand.write_text(text.replace(",1,lora", ",X,lora").replace(",0,lora", ",1,lora").replace(",X,lora", ",0,lora"))
    os.utime(cand, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cand.stat().st_size == st.st_size and cand.stat().st_mtime_ns == st.st_mtime_ns
    after = comparison_table(scan([root], parse_settings({}), probes=PROBES))[0]["slices"][0]["delta"]
    assert before == pytest.approx(0.0) and after == pytest.approx(0.2 - 0.8)
