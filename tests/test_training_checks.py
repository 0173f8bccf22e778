"""The training family's checks: one per rule, detections told apart by their kind (never their text),
behaviour flags instead of id lists, and no state kept between scans outside the scan session."""

from __future__ import annotations

import json
from pathlib import Path

from doctor.core.model import Severity
from probes.training.detection import Detection, Kind
from probes.training.logchecks import RULE_OF_KIND, run_log_checks
from probes.training.logsubject import LogSubject
from probes.training.rules import LOG_RULES, RULES
from probes.training.series import from_columns
from tests.test_training_helpers import healthy_curve, run, write_state


def test_every_detection_kind_is_raised_under_one_log_rule():
    assert set(RULE_OF_KIND) == set(Kind)
    assert {r.id for r in RULE_OF_KIND.values()} <= {r.id for r in LOG_RULES}


def test_watch_once_flag_marks_the_rules_watch_reports_once_per_log():
    assert {r.id for r in RULES if r.has("watch_once")} == {"TRN002", "TRN004", "TRN010", "TRN011"}


def test_a_log_check_turns_only_its_kinds_into_findings():
    t, loss, gn, lr = healthy_curve(n=60)
    subject = LogSubject(Path("log.jsonl"), from_columns(t, loss, gn, lr))
    # a detection planted by kind: the check of its rule reports it, with the locator and evidence shape
    subject.detections = [Detection(Kind.LR_NO_DECAY, 7, "planted", marks=[7], severity="warning")]
    found = run_log_checks(subject)
    assert [(f.rule, f.locator, f.message, f.severity) for f in found] == [
        ("TRN008", "step 7", "planted", Severity.WARNING)
    ]
    assert found[0].evidence["marks"] == [7] and found[0].evidence["points"]["steps"]


def test_no_state_is_kept_on_the_rollout_or_the_probes(tmp_path):
    t, loss, gn, lr = healthy_curve(n=60)
    write_state(tmp_path / "trainer_state.json", t, loss, gn, lr)
    (tmp_path / "training_args.json").write_text(json.dumps({"learning_rate": 0.5, "max_grad_norm": 0.0}))
    (tmp_path / "rollout.toml").write_text('[rollout]\nname = "x"\n[recipe]\nlearning_rate = 0.5\nwarmup_ratio = 0.0\n')
    first = run(tmp_path)
    # the manifest's [recipe] repeats CFG001: said once, on training_args.json; CFG002 only from the manifest
    cfg = sorted((f.rule, f.path.name) for f in first.findings if f.rule.startswith("CFG"))
    assert cfg == [("CFG001", "training_args.json"), ("CFG002", "rollout.toml"), ("CFG007", "training_args.json")]
    from probes.training import PROBES

    for p in PROBES:
        assert vars(p.impl) == {}, f"{type(p.impl).__name__} keeps state between scans: {vars(p.impl)}"
    second = run(tmp_path)  # a second scan in the same process sees the same, not what the first left
    assert [(f.rule, f.path, f.locator, f.message) for f in second.findings] == [
        (f.rule, f.path, f.locator, f.message) for f in first.findings
    ]


def test_unreadable_log_parts_are_doc001_through_the_scan(tmp_path):
    """File-level problems are handed to ctx.unreadable; the message and locator are the reader's own."""
    p = tmp_path / "trainer_state.json"
    t, loss, gn, lr = healthy_curve(n=60)
    write_state(p, t, loss, gn, lr)
    p.write_text(p.read_text()[:-200])
    (doc,) = [f for f in run(p).findings if f.rule == "DOC001"]
    assert doc.message.startswith("trainer_state.json: ") and "salvaged" in doc.message
    assert doc.locator.startswith("line ")
    assert doc.message.count(doc.locator) == 1  # the position is said once, by the reader
    assert doc.evidence["reason"] == doc.message.removeprefix("trainer_state.json: ")
