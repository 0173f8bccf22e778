"""Playbook loading/validation and walking over synthetic evidence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from doctor.core.model import Artifact, Finding, Severity
from doctor.playbook.tree import PLAYBOOK_DIR, Evidence, PlaybookError, Walker, load_all, load_playbook

RULE_IDS = {"TRN001", "TRN002", "EVL001", "SRV001"}


def finding(rule: str, *symptoms: str, severity: str = "error") -> Finding:
    return Finding(rule, Severity(severity), rule, "msg", Path("x"), symptoms=tuple(symptoms))


def write(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
playbook: {name}
entry: q
nodes:
  q:
    question: Is it broken?
    when: {{any_symptom: [non_finite]}}
    yes: broken
    no: fine
  broken:
    diagnosis: broken
    causes:
      - cause: lr_too_high
        support: {{any_symptom: [non_finite]}}
  fine:
    diagnosis: fine
"""


def test_shipped_playbooks_validate():
    books = load_all(PLAYBOOK_DIR)
    assert {"triage", "instability", "slice_regression", "serving_mismatch", "adaptation_path"} <= set(books)


@pytest.mark.parametrize(
    ("mutation", "node", "message"),
    [
        (("[non_finite]", "[not_a_symptom]"), "q", "unknown symptom 'not_a_symptom'"),
        (("{any_symptom: [non_finite]}\n    yes", "{any_rule: [XYZ999]}\n    yes"), "q", "unknown rule 'XYZ999'"),
        (("yes: broken", "yes: nowhere"), "q", "branch to missing node 'nowhere'"),
        (("no: fine", "no: q"), "q", "cycle: q -> q"),
        (("yes: broken\n    no: fine", "yes: broken\n    no: broken"), "fine", "unreachable"),
        (("    no: fine\n", "\n"), "q", "needs `yes` and `no`"),
        (("cause: lr_too_high", "cause: LR-Too-High"), "broken", "snake_case"),
    ],
)
def test_validator_names_file_node_and_problem(tmp_path, mutation, node, message):
    body = GOOD.format(name="pb")
    old, new = mutation
    assert old in body, old
    path = write(tmp_path, "pb", body.replace(old, new))
    with pytest.raises(PlaybookError) as err:
        load_playbook(path, RULE_IDS)
    text = str(err.value)
    assert str(path) in text and f"node {node!r}" in text and message in text


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "pb", "playbook: pb\nentry: q\nnodes:\n  q: [unclosed\n")
    with pytest.raises(PlaybookError, match=r"pb.yaml: invalid YAML at line \d+"):
        load_playbook(path)


def test_bad_job_override_rejected(tmp_path):
    body = GOOD.format(name="pb")
    body += (
        "    actions:\n      - kind: job\n        text: go\n        job: {kind: retrain, overrides: {lernrate: x0.5}}\n"
    )
    path = write(tmp_path, "pb", body)
    with pytest.raises(PlaybookError, match="unknown recipe field 'lernrate'"):
        load_playbook(path)


def test_visit_of_missing_playbook_and_visit_cycle(tmp_path):
    write(tmp_path, "a", "playbook: a\nentry: v\nnodes:\n  v: {visit: b}\n")
    with pytest.raises(PlaybookError, match="visits missing playbook 'b'"):
        load_all(tmp_path)
    write(tmp_path, "b", "playbook: b\nentry: v\nnodes:\n  v: {visit: a}\n")
    with pytest.raises(PlaybookError, match="playbook cycle"):
        load_all(tmp_path)


def walk(findings: list[Finding], kinds=("training_log", "eval_table", "serving_config"), answers=None, **kw):
    books = load_all(PLAYBOOK_DIR)
    arts = [Artifact(Path(k), k) for k in kinds]
    return Walker(books).walk(Evidence(findings, arts), answers=answers, **kw)


def test_clean_rollout_ends_in_no_regression():
    t = walk([])
    assert t.leaf == "triage.no_regression" and t.causes == []
    asked = [s for s in t.path if s.node == "user_reports_regression"]
    assert asked and asked[0].answer == "unknown" and asked[0].how == "pending"


def test_headless_answer_takes_the_users_branch():
    t = walk([], answers={"user_reports_regression": "yes"})
    assert t.leaf == "triage.prompt_policy"
    assert t.causes[0].cause == "prompt_policy_interaction"
    with pytest.raises(PlaybookError, match="not one of"):
        walk([], answers={"user_reports_regression": "maybe"})


def test_interactive_walk_stops_at_the_pending_question():
    t = walk([], interactive=True)
    assert t.pending is not None and t.pending.node == "user_reports_regression"
    assert t.pending.choices == ["yes", "no"]


def test_missing_evidence_is_unknown_and_said():
    t = walk([], kinds=())
    step = next(s for s in t.path if s.node == "training_unstable")
    assert step.answer == "unknown" and "no training_log" in step.how


def test_instability_and_slice_drop_rank_both_causes():
    fs = [
        finding("TRN001", "non_finite"),
        finding("TRN002", "loss_spike", "lr_too_high", severity="warning"),
        finding("EVL001", "slice_regression"),
        finding("EVL002", "narrow_coverage", severity="warning"),
    ]
    t = walk(fs)
    causes = [c.cause for c in t.causes]
    assert "lr_too_high" in causes and "narrow_data" in causes
    assert t.leaves == ["instability.lr_far_too_high", "slice_regression.narrow_data", "triage.diagnosed"]
    by = {c.cause: c for c in t.causes}
    assert "TRN001" in by["lr_too_high"].evidence and "EVL002" in by["narrow_data"].evidence
    kinds = [a["job"]["overrides"] for a in t.actions if a["kind"] == "job"]
    assert {"learning_rate": {"multiply": 0.1, "max": 2.0e-4}, "max_grad_norm": 1.0, "warmup_ratio": 0.03} in kinds
    assert {"train_slices": "all"} in kinds


def test_qlora_precision_ranks_quantization_first():
    fs = [finding("TRN001", "non_finite"), finding("CFG001", "precision_risk", "quantization_config")]
    t = walk(fs)
    assert t.causes[0].cause == "precision_risk"
    job = next(a for a in t.actions if a["kind"] == "job")
    assert job["job"]["overrides"]["bnb_4bit_compute_dtype"] == "bfloat16"
