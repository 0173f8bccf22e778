"""Every output format, rendered from an in-memory Report (no probes, no fixtures needed)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from doctor.core.model import Artifact, JobAction, Report, Severity
from doctor.core.rules import RuleRegistry, rule
from doctor.render import FORMATS, RenderContext, github_report, markdown_report, render

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
SARIF_SCHEMA = SCHEMAS / "sarif-schema-2.1.0.json"
JUNIT_XSD = SCHEMAS / "junit.xsd"

TRN = rule("TRN901", "Loss became non-finite", "error", ["non_finite"], "Loss hit NaN.", "Lower the LR.")
CFG = rule("CFG901", "Risky precision", "warning", ["precision_risk"], "fp16 with 4-bit.", "Use bf16.")
EVL = rule("EVL901", "Few samples in slice", "info", ["insufficient_samples"], "Small slice.", "Add samples.")
SRV = rule(
    "SRV901", "Rank above server limit", "error", ["rank_exceeds_limit"], "Rank too big.", "Raise max_lora_rank."
)


class _FakeNumpyScalar:
    """Duck-typed stand-in for a numpy scalar (reporters must not import numpy)."""

    def __init__(self, value):
        self.value = value

    def tolist(self):
        return self.value


@pytest.fixture
def registry() -> RuleRegistry:
    reg = RuleRegistry()
    reg.extend([TRN, CFG, EVL, SRV])
    return reg


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A cwd holding a rollout, plus one artifact outside it."""
    repo = tmp_path / "repo"
    run = repo / "runs" / "diverged"
    run.mkdir(parents=True)
    (run / "trainer_state.json").write_text("{}")
    (run / "train_config.yaml").write_text("a: 1\n")
    healthy = repo / "runs" / "healthy" / "trainer_state.json"
    healthy.parent.mkdir(parents=True)
    healthy.write_text("{}")
    outside = tmp_path / "elsewhere" / "vllm.yaml"
    outside.parent.mkdir()
    outside.write_text("x: 1\n")
    monkeypatch.chdir(repo)
    return repo, run, healthy, outside


def _report(world) -> Report:
    repo, run, healthy, outside = world
    artifacts = [
        Artifact(run / "trainer_state.json", "training_log", {"steps": 120, "last_loss": math.nan}, rollout=run),
        Artifact(run / "train_config.yaml", "training_config", {"lr": 1e-2, "peak": math.inf}),
        Artifact(
            healthy, "training_log", {"steps": _FakeNumpyScalar(300), "grads": _FakeNumpyScalar([1.0, -math.inf])}
        ),
        Artifact(outside, "serving_config", {}),
    ]
    findings = [
        TRN.finding(
            run / "trainer_state.json",
            "loss is NaN from step 120 on | 100% of the last 30 steps\nfirst bad step: 120",
            locator="step 120",
            evidence={"loss": [1.2, math.nan, math.inf, -math.inf], "where": run, "n": _FakeNumpyScalar(3)},
            action=JobAction("retrain", {"learning_rate": "x0.5", "max_grad_norm": 0.3}),
            line=7,
        ),
        CFG.finding(
            run / "train_config.yaml", 'fp16 compute, nf4: <risky> & "quoted"', locator="/bnb_4bit_compute_dtype"
        ),
        EVL.finding(None, "slice safety has only 12 samples", locator="thresholds.min_samples"),
        SRV.finding(outside, "rank 64 > max_lora_rank 16, at: server, pod", locator="/max_lora_rank", line=3),
    ]
    passed = {str(healthy): ["training.loss", "training.grad"], str(run / "trainer_state.json"): ["training.grad"]}
    return Report(
        targets=[repo],
        artifacts=artifacts,
        findings=findings,
        timings={"total": 0.25, "weird": math.nan},
        passed=passed,
        suppressed=2,
    )


@pytest.fixture
def report(world) -> Report:
    return _report(world)


@pytest.fixture
def ctx(registry, world) -> RenderContext:
    return RenderContext(rules=registry, cwd=world[0], version="0.1.0")


def _strict_loads(text: str):
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def test_every_format_renders(report, ctx, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for fmt in FORMATS:
        out = render(report, fmt, ctx)
        assert out.strip(), fmt


def test_reporters_do_not_import_rich_or_numpy():
    import subprocess
    import sys

    code = (
        "import sys, doctor.render as r\n"
        "for f in r.FORMATS: __import__(f'doctor.render.{f}_report')\n"
        "print(sorted(m for m in ('rich', 'numpy', 'torch', 'textual', 'jsonschema', 'lxml') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.strip() == "[]"


# --- JSON -------------------------------------------------------------------------------------------------


def test_json_is_strict_with_stable_keys(report, ctx):
    data = _strict_loads(render(report, "json", ctx))
    assert data["schema"] == "peft-doctor/report/1"
    assert data["tool"] == {"name": "peft-doctor", "version": "0.1.0"}
    assert set(data) >= {"schema", "tool", "artifacts", "findings", "summary", "exit_code", "timings"}
    assert data["summary"] == {"error": 2, "warning": 1, "info": 1}
    assert data["exit_code"] == 1
    for a in data["artifacts"]:
        assert set(a) >= {"path", "kind", "facts"}
    stable = {"rule", "severity", "title", "message", "path", "locator", "evidence", "symptoms", "fix"}
    for f in data["findings"]:
        assert set(f) >= stable
        assert f["fingerprint"]
    trn = data["findings"][0]
    assert trn["path"] == "runs/diverged/trainer_state.json"
    assert trn["evidence"]["loss"] == [1.2, "NaN", "Infinity", "-Infinity"]
    assert trn["evidence"]["where"] == "runs/diverged"
    assert trn["evidence"]["n"] == 3
    assert trn["action"] == {"kind": "retrain", "overrides": {"learning_rate": "x0.5", "max_grad_norm": 0.3}}
    assert trn["symptoms"] == ["non_finite"]
    assert data["findings"][2]["path"] == ""  # settings finding
    assert data["findings"][3]["path"].endswith("elsewhere/vllm.yaml") and data["findings"][3]["path"].startswith("/")
    facts = {a["path"]: a["facts"] for a in data["artifacts"]}
    assert facts["runs/diverged/trainer_state.json"]["last_loss"] == "NaN"
    assert facts["runs/diverged/train_config.yaml"]["peak"] == "Infinity"
    assert facts["runs/healthy/trainer_state.json"] == {"steps": 300, "grads": [1.0, "-Infinity"]}
    assert data["timings"]["weird"] == "NaN"


def test_json_empty_report(ctx):
    data = _strict_loads(render(Report(targets=[], artifacts=[], findings=[]), "json", ctx))
    assert data["findings"] == [] and data["exit_code"] == 0
    assert data["summary"] == {"error": 0, "warning": 0, "info": 0}


# --- SARIF ------------------------------------------------------------------------------------------------


def test_sarif_validates_against_the_oasis_schema(report, ctx):
    jsonschema = pytest.importorskip("jsonschema")
    if not SARIF_SCHEMA.exists():
        pytest.skip(f"SARIF schema not found at {SARIF_SCHEMA} (the shared/ folder sits beside the checkout)")
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    log = _strict_loads(render(report, "sarif", ctx))
    jsonschema.validate(log, schema)
    empty = _strict_loads(render(Report(targets=[], artifacts=[], findings=[]), "sarif", ctx))
    jsonschema.validate(empty, schema)
    assert empty["runs"][0]["results"] == []


def test_sarif_content(report, ctx):
    log = _strict_loads(render(report, "sarif", ctx))
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "peft-doctor" and driver["version"] == "0.1.0" and driver["informationUri"]
    ids = [r["id"] for r in driver["rules"]]
    assert sorted(ids) == ["CFG901", "EVL901", "SRV901", "TRN901"]
    for r in driver["rules"]:
        for key in ("shortDescription", "fullDescription", "help"):
            assert r[key]["text"].strip()
        assert r["defaultConfiguration"]["level"] in {"error", "warning", "note"}
    assert driver["rules"][ids.index("TRN901")]["properties"]["tags"] == ["non_finite"]
    assert driver["rules"][ids.index("EVL901")]["defaultConfiguration"]["level"] == "note"
    results = run["results"]
    assert len(results) == 4
    for res in results:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["message"]["text"].strip()
        assert res["partialFingerprints"]["peftDoctor/v1"]
    assert [r["level"] for r in results] == ["error", "warning", "note", "error"]
    locs = [r["locations"][0]["physicalLocation"] for r in results]
    assert locs[0]["artifactLocation"] == {"uri": "runs/diverged/trainer_state.json", "uriBaseId": "%SRCROOT%"}
    assert locs[0]["region"]["startLine"] == 7
    assert locs[1]["region"]["startLine"] == 1
    assert locs[2]["artifactLocation"]["uri"] == "."  # no path: the settings
    # Repo-relative for everything under cwd; the outside file is an absolute file:// URI, never a bare path.
    for loc in locs[:3]:
        uri = loc["artifactLocation"]["uri"]
        assert not uri.startswith("/") and "://" not in uri
    assert locs[3]["artifactLocation"]["uri"].startswith("file:///")


def test_sarif_fingerprints_are_stable(report, ctx, world):
    first = _strict_loads(render(report, "sarif", ctx))
    second = _strict_loads(render(_report(world), "sarif", ctx))
    fp1 = [r["partialFingerprints"] for r in first["runs"][0]["results"]]
    fp2 = [r["partialFingerprints"] for r in second["runs"][0]["results"]]
    assert fp1 == fp2
    assert len({f["peftDoctor/v1"] for f in fp1}) == len(fp1)


def test_sarif_caps_results(ctx, world):
    from doctor.render import sarif_report

    run = world[1]
    findings = [EVL.finding(run / "trainer_state.json", f"m{i}", locator=f"step {i}") for i in range(30)]
    findings.append(TRN.finding(run / "trainer_state.json", "bad", locator="step 0"))
    report = Report(targets=[], artifacts=[], findings=findings)
    old = sarif_report.MAX_RESULTS
    sarif_report.MAX_RESULTS = 10
    try:
        log = _strict_loads(render(report, "sarif", ctx))
    finally:
        sarif_report.MAX_RESULTS = old
    run0 = log["runs"][0]
    assert len(run0["results"]) == 10
    assert "TRN901" in {r["ruleId"] for r in run0["results"]}  # the worst are kept
    note = run0["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    assert "21 of 31" in note


# --- JUnit ------------------------------------------------------------------------------------------------


def _junit_schema():
    etree = pytest.importorskip("lxml.etree")
    if not JUNIT_XSD.exists():
        pytest.skip(f"JUnit XSD not found at {JUNIT_XSD} (the shared/ folder sits beside the checkout)")
    return etree, etree.XMLSchema(etree.parse(str(JUNIT_XSD)))


def test_junit_validates_and_has_one_failure_per_finding(report, ctx):
    etree, schema = _junit_schema()
    xml = render(report, "junit", ctx)
    doc = etree.fromstring(xml.encode("utf-8"))
    assert schema.validate(doc), schema.error_log
    failures = doc.findall(".//testcase/failure")
    assert len(failures) == len(report.findings)
    assert sum(int(s.get("failures")) for s in doc.findall("testsuite")) == len(report.findings)
    assert all(s.get("errors") == "0" for s in doc.findall("testsuite"))
    assert {f.get("type") for f in failures} == {"TRN901", "CFG901", "EVL901", "SRV901"}
    for f in failures:
        assert f.text and f.text.strip()  # GitLab reads the body
    names = {tc.get("name") for tc in doc.iter("testcase")}
    assert "TRN901 step 120" in names
    suites = {s.get("name"): s for s in doc.findall("testsuite")}
    assert "runs/diverged/trainer_state.json" in suites
    assert "(settings)" in suites
    healthy = suites["runs/healthy/trainer_state.json"]
    assert healthy.get("failures") == "0" and healthy.get("tests") == "2"
    trn = doc.find(".//failure[@type='TRN901']")
    assert "Advice: Lower the LR." in trn.text and "NaN" in trn.text
    cfg = doc.find(".//failure[@type='CFG901']")
    assert '<risky> & "quoted"' in cfg.get("message")
    assert doc.find(".//testcase[failure]").get("classname") == "peft-doctor.training_log"


def test_junit_clean_run_still_has_tests(ctx, world):
    etree, schema = _junit_schema()
    healthy = world[2]
    clean = Report(
        targets=[],
        artifacts=[Artifact(healthy, "training_log")],
        findings=[],
        passed={str(healthy): ["training.loss"]},
    )
    doc = etree.fromstring(render(clean, "junit", ctx).encode("utf-8"))
    assert schema.validate(doc), schema.error_log
    assert len(doc.findall(".//testcase")) == 1 and not doc.findall(".//failure")
    empty = etree.fromstring(render(Report(targets=[], artifacts=[], findings=[]), "junit", ctx).encode())
    assert schema.validate(empty), schema.error_log
    assert len(empty.findall(".//testcase")) >= 1


def test_junit_strips_characters_xml_cannot_hold(ctx, world):
    etree, schema = _junit_schema()
    bad = Report(targets=[], artifacts=[], findings=[TRN.finding(world[1], "bell\x07 and nul\x00 here")])
    doc = etree.fromstring(render(bad, "junit", ctx).encode("utf-8"))
    assert schema.validate(doc), schema.error_log


# --- GitLab -----------------------------------------------------------------------------------------------


def test_gitlab_code_quality(report, ctx):
    out = render(report, "gitlab", ctx)
    assert not out.startswith("\ufeff")
    assert not out.encode("utf-8").startswith(b"\xef\xbb\xbf")
    issues = _strict_loads(out)
    assert isinstance(issues, list) and len(issues) == 4
    fps = [i["fingerprint"] for i in issues]
    assert len(set(fps)) == len(fps)
    assert [i["severity"] for i in issues] == ["critical", "major", "info", "critical"]
    for i in issues:
        assert i["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert i["description"] and i["check_name"]
        assert isinstance(i["location"]["path"], str) and i["location"]["path"]
        assert i["location"]["lines"]["begin"] >= 1
    assert issues[0]["location"] == {"path": "runs/diverged/trainer_state.json", "lines": {"begin": 7}}
    # Same fingerprint as the finding's own logical identity.
    assert fps[0] == report.findings[0].fingerprint("runs/diverged/trainer_state.json")


def test_gitlab_duplicate_identity_still_unique(ctx, world):
    dup = [TRN.finding(world[1], "a", locator="step 1"), TRN.finding(world[1], "b", locator="step 1")]
    issues = _strict_loads(render(Report(targets=[], artifacts=[], findings=dup), "gitlab", ctx))
    assert len({i["fingerprint"] for i in issues}) == 2


# --- GitHub -----------------------------------------------------------------------------------------------


def test_github_annotations_escape(report, ctx, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    out = render(report, "github", ctx)
    lines = out.splitlines()
    commands = [line for line in lines if line.startswith("::")]
    assert len(commands) == 4
    assert commands[0].startswith(
        "::error file=runs/diverged/trainer_state.json,line=7,title=TRN901 Loss became non-finite::"
    )
    assert commands[1].startswith("::warning ") and commands[2].startswith("::notice ")
    # Data: % and newlines escaped; the message stays on one line.
    assert "100%25 of the last 30 steps%0Afirst bad step: 120" in commands[0]
    # Properties: ':' and ',' escaped (the title of the SRV finding has none, the file path of nothing does;
    # check with a crafted title below) -- and data keeps ':' and ',' as they are.
    assert "at: server, pod" in commands[3]
    # Every finding is also a plain log line.
    plain = [line for line in lines if not line.startswith("::")]
    for f in report.findings:
        assert any(f.rule in line and f.severity.value in line for line in plain)


def test_github_property_escaping():
    assert github_report.escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"
    assert github_report.escape_data("a:b,c%d\r\ne") == "a:b,c%25d%0D%0Ae"


def test_github_title_with_colon_and_comma(ctx, world):
    r = rule("TRN902", "Loss: high, rising", "warning", ["loss_spike"], "x", "y")
    report = Report(targets=[], artifacts=[], findings=[r.finding(world[1] / "a,b:c.json", "m")])
    ann = next(line for line in render(report, "github", ctx).splitlines() if line.startswith("::"))
    props, _, data = ann[len("::warning ") :].partition("::")
    assert props == "file=runs/diverged/a%2Cb%3Ac.json,line=1,title=TRN902 Loss%3A high%2C rising"
    assert data == "m\nAdvice: y".replace("\n", "%0A")


def test_github_step_summary(report, ctx, tmp_path, monkeypatch):
    summary = tmp_path / "step_summary.md"
    summary.write_text("previous step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    render(report, "github", ctx)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("previous step\n")  # appended, not overwritten
    assert "# peft-doctor" in text and "| TRN901 |" in text
    assert text.endswith(markdown_report.render(report, ctx))


def test_github_step_summary_truncated(tmp_path):
    target = tmp_path / "s.md"
    big = "x" * (2 * github_report.STEP_SUMMARY_LIMIT)
    assert github_report.write_step_summary(big, target)
    data = target.read_bytes()
    assert len(data) <= github_report.STEP_SUMMARY_LIMIT
    assert b"truncated" in data


# --- Markdown ---------------------------------------------------------------------------------------------


def test_markdown(report, ctx):
    md = render(report, "markdown", ctx)
    assert md.startswith("# peft-doctor 0.1.0 report")
    assert "| ✗ error | 2 |" in md and "| ! warning | 1 |" in md and "| i info | 1 |" in md
    # A message with a pipe and a newline stays inside its table cell.
    row = next(line for line in md.splitlines() if line.startswith("| ✗ error | TRN901"))
    assert "\\|" in row and "<br>" in row and row.endswith("|")
    assert "&lt;risky&gt;" in md
    assert "**Advice:** Lower the LR." in md
    assert "doctor jobs run --from-triage" in md
    assert markdown_report.sections(report, ctx)[0].startswith("# peft-doctor")
    clean = render(Report(targets=[], artifacts=[], findings=[]), "markdown", ctx)
    assert "No issues found!" in clean


# --- Console ----------------------------------------------------------------------------------------------


def test_console_checklist(report, ctx):
    out = render(report, "console", ctx)
    assert "\x1b[" not in out  # colour only when asked
    assert "[✗] runs/diverged/trainer_state.json (training_log)" in out
    assert "[!] runs/diverged/train_config.yaml (training_config)" in out
    assert "[✓] runs/healthy/trainer_state.json (training_log)" in out
    assert "[i] (settings)\n" in out
    assert "    ✗ TRN901 Loss became non-finite" in out
    assert "    ! CFG901 Risky precision" in out
    assert "    i EVL901 Few samples in slice" in out
    assert "        at step 120" in out
    assert "        Advice: Lower the LR." in out
    assert "doctor triage runs/diverged && doctor jobs run --from-triage" in out
    assert "learning_rate: x0.5" in out
    assert out.rstrip().splitlines()[-1] == "Doctor found 2 errors, 1 warning, 1 info in 4 artifacts (2 suppressed)"
    # Passing probes only in verbose mode.
    assert "✓ training.loss" not in out


def test_console_verbose_and_color(report, ctx):
    ctx.verbose = True
    ctx.color = True
    out = render(report, "console", ctx)
    assert "\x1b[" in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "    ✓ training.loss" in plain and "    ✓ training.grad" in plain
    assert '"NaN"' in plain  # evidence shown, strictly
    assert '"where": "runs/diverged"' in plain
    assert "[✗]" in plain and "[✓]" in plain


def test_console_clean(ctx, world):
    healthy = world[2]
    out = render(Report(targets=[], artifacts=[Artifact(healthy, "training_log")], findings=[]), "console", ctx)
    assert "[✓] runs/healthy/trainer_state.json" in out
    assert out.rstrip().splitlines()[-1] == "No issues found! (1 artifact checked)"
    empty = render(Report(targets=[], artifacts=[], findings=[]), "console", ctx)
    assert "No issues found!" in empty


def test_severity_glyphs_match_model():
    from doctor.render.console_report import GLYPHS

    for sev in Severity:
        assert GLYPHS[sev.value] == sev.glyph
