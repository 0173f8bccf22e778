"""Eval table formats (CSV, TSV, JSONL, Parquet, lm-eval) and bad input: each problem a clear finding,
the rest still analysed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.core.settings import parse_settings
from doctor.engine import scan
from probes import classify_file
from probes.eval_slices import PROBES, comparison_table
from probes.eval_slices.readers import delimited


def _rows(variant: str, n: int = 500, drop: int = 50) -> list[dict]:
    """arith: 80% in base, 8 points lower in lora (drop=40 flips); reverse unchanged."""
    out = []
    for i in range(n):
        b = int(i < 400)
        s = b if variant == "base" else int(i < 400 - drop)
        out.append({"id": f"a{i}", "slice": "arith", "score": s, "variant": variant})
    for i in range(100):
        out.append({"id": f"r{i}", "slice": "reverse", "score": int(i % 2), "variant": variant})
    return out


def _csv(path: Path, rows: list[dict], sep: str = ",") -> Path:
    cols = list(rows[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sep.join(cols) + "\n" + "\n".join(sep.join(str(r[c]) for c in cols) for r in rows) + "\n")
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run(root: Path):
    rep = scan([root], parse_settings({}), probes=PROBES)
    return rep.findings


def rules_of(findings) -> list[str]:
    return sorted(f.rule for f in findings)


def _regressed(findings) -> list[str]:
    return [f.locator for f in findings if f.rule == "EVL001"]


# ------------------------------------------------------------------------------------------------ formats


def test_jsonl_tables(tmp_path):
    _jsonl(tmp_path / "eval" / "base.jsonl", _rows("base"))
    _jsonl(tmp_path / "eval" / "lora.jsonl", _rows("lora"))
    assert _regressed(run(tmp_path)) == ["lora:arith"]


def test_parquet_tables(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "eval").mkdir()
    for v in ("base", "lora"):
        rows = _rows(v)
        tbl = pa.table({k: [r[k] for r in rows] for k in rows[0]})
        pq.write_table(tbl, tmp_path / "eval" / f"{v}.parquet")
    assert classify_file(tmp_path / "eval" / "base.parquet") == "eval_table"
    assert _regressed(run(tmp_path)) == ["lora:arith"]


def test_tsv_and_bool_scores(tmp_path):
    for v in ("base", "lora"):
        rows = [{**r, "score": "true" if r["score"] else "false"} for r in _rows(v)]
        _csv(tmp_path / "eval" / f"{v}.tsv", rows, sep="\t")
    assert _regressed(run(tmp_path)) == ["lora:arith"]


def test_big_files_go_through_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setattr(delimited, "BIG_FILE", 0)
    _csv(tmp_path / "eval" / "base.csv", _rows("base"))
    rows = _rows("lora")
    rows[3]["score"] = "oops"
    _csv(tmp_path / "eval" / "lora.csv", rows)
    findings = run(tmp_path)
    assert _regressed(findings) == ["lora:arith"]
    bad = [f for f in findings if f.rule == "EVL012"]
    assert bad and "'oops' at line 5" in bad[0].message


def test_lm_eval_harness_samples_and_results(tmp_path):
    for model, drop in (("base", 0), ("lora", 60)):
        d = tmp_path / "lm" / model
        d.mkdir(parents=True)
        lines = []
        for i in range(500):
            acc = float(i < (400 - drop))
            lines.append(
                {
                    "doc_id": i,
                    "doc": {"q": "x" * 10},
                    "target": "1",
                    "arguments": [],
                    "resps": [["1"]],
                    "filtered_resps": ["1"],
                    "filter": "none",
                    "metrics": ["acc"],
                    "acc": acc,
                }
            )
        _jsonl(d / "samples_arc_easy_2026-01-01T00-00-00.000.jsonl", lines)
        (d / "results_2026-01-01T00-00-00.000.json").write_text(
            json.dumps(
                {
                    "results": {"arc_easy": {"acc,none": 0.8, "acc_stderr,none": 0.01}},
                    "config": {"model": "hf", "model_args": f"pretrained=tiny,peft={model}"},
                    "versions": {},
                }
            )
        )
        assert classify_file(d / "samples_arc_easy_2026-01-01T00-00-00.000.jsonl") == "eval_table"
        assert classify_file(d / "results_2026-01-01T00-00-00.000.json") == "eval_table"
    rep = scan([tmp_path], parse_settings({}), probes=PROBES)
    assert _regressed(rep.findings) == ["lora:arc_easy"]
    res = [a for a in rep.artifacts if a.path.name.startswith("results")]
    assert res[0].facts["tasks"]["arc_easy"]["acc,none"] == 0.8


# ------------------------------------------------------------------------------------------- bad input


def test_missing_columns_lists_what_is_there_and_the_rest_is_analysed(tmp_path):
    _csv(tmp_path / "eval" / "base.csv", _rows("base"))
    _csv(tmp_path / "eval" / "lora.csv", _rows("lora"))
    (tmp_path / "eval" / "broken.csv").write_text("slice,score,answer\narith,1,42\n")
    findings = run(tmp_path)
    mal = [f for f in findings if f.rule == "EVL010"]
    assert len(mal) == 1 and mal[0].severity.value == "error"
    assert "missing required column(s) id" in mal[0].message and "the file has: slice, score, answer" in mal[0].message
    assert _regressed(findings) == ["lora:arith"]


def test_duplicate_ids(tmp_path):
    _csv(tmp_path / "eval" / "base.csv", _rows("base"))
    rows = _rows("lora")
    rows += [dict(rows[0], score=1), dict(rows[1], score=1)]
    _csv(tmp_path / "eval" / "lora.csv", rows)
    findings = run(tmp_path)
    dup = [f for f in findings if f.rule == "EVL011"]
    assert len(dup) == 1 and dup[0].evidence["duplicated_ids"] == 2 and "'a0'" in dup[0].message
    assert _regressed(findings) == ["lora:arith"]  # first rows kept


def test_nan_and_non_numeric_scores(tmp_path):
    _csv(tmp_path / "eval" / "base.csv", _rows("base"))
    rows = _rows("lora")
    rows[0]["score"] = "nan"
    rows[1]["score"] = ""
    rows[2]["score"] = "banana"
    rows[3]["score"] = 7
    _csv(tmp_path / "eval" / "lora.csv", rows)
    findings = run(tmp_path)
    bad = [f for f in findings if f.rule == "EVL012"]
    assert len(bad) == 1
    ev = bad[0].evidence
    assert ev["missing_or_NaN"] == 2 and ev["non-numeric"] == 1 and ev["outside_0..1"] == 1
    assert "'banana' at line 4" in bad[0].message
    assert _regressed(findings) == ["lora:arith"]
    unp = [f for f in findings if f.rule == "EVL008"]
    assert unp and unp[0].evidence["unusable_pairs"] == 4


def test_empty_slices(tmp_path):
    _csv(tmp_path / "eval" / "base.csv", _rows("base"))
    rows = _rows("lora")
    rows[-1]["slice"] = ""
    rows.append({"id": "z1", "slice": "ghost", "score": "nan", "variant": "lora"})
    _csv(tmp_path / "eval" / "lora.csv", rows)
    findings = run(tmp_path)
    emp = [f for f in findings if f.rule == "EVL013"]
    text = " ".join(f.message for f in emp)
    assert "1 row(s) have an empty slice name" in text and "ghost" in text
    assert _regressed(findings) == ["lora:arith"]


def test_mixed_types_in_jsonl(tmp_path):
    _jsonl(tmp_path / "eval" / "base.jsonl", _rows("base"))
    rows = _rows("lora")
    rows[5]["score"] = True
    rows[6]["score"] = "1"
    rows[7]["score"] = "maybe"
    rows[8]["id"] = 12345  # an int id among strings is still an id
    _jsonl(tmp_path / "eval" / "lora.jsonl", rows)
    findings = run(tmp_path)
    bad = [f for f in findings if f.rule == "EVL012"]
    msgs = " ".join(f.message for f in bad)
    assert "mixes value types" in msgs and "'maybe'" in msgs
    assert _regressed(findings) == ["lora:arith"]


def test_bad_json_lines_and_empty_file(tmp_path):
    _jsonl(tmp_path / "eval" / "base.jsonl", _rows("base"))
    p = _jsonl(tmp_path / "eval" / "lora.jsonl", _rows("lora"))
    p.write_text(p.read_text() + "{not json\n")
    (tmp_path / "eval" / "empty.csv").write_text("id,slice,score\n")
    findings = run(tmp_path)
    assert any(f.rule == "EVL010" and "not JSON objects" in f.message for f in findings)
    assert any(f.rule == "EVL010" and "no rows" in f.message and f.severity.value == "error" for f in findings)
    assert _regressed(findings) == ["lora:arith"]
    assert not [f for f in findings if f.rule.startswith("DOC")]


def test_comparison_table_from_paths(tmp_path):
    b = _csv(tmp_path / "base.csv", _rows("base"))
    c = _csv(tmp_path / "lora.csv", _rows("lora"))
    table = comparison_table([b, c])
    assert table[0]["variant"] == "lora" and table[0]["overall"]["n"] == 600
