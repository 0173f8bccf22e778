"""Playbooks: YAML decision trees walked over the evidence of a check (see docs/playbooks.md).

Three kinds of node:
- question: `when` (a predicate over findings, symptoms and facts) or `ask` (a question for the user),
  branches `yes`/`no`/`unknown` (or one branch per `ask` choice); `requires` lists artifact kinds without
  which the evidence is missing and the answer is `unknown`.
- visit: `visit: PLAYBOOK` walks another playbook to its leaf, collects its diagnosis, then goes `next`.
- leaf: `diagnosis`, ranked `causes` (each with the symptoms/rules that support it) and `actions`.

Leaf text is assembled from the evidence that fired, so it never claims a symptom the walk answered no:
`diagnosis` is a string or a list of parts, each a string (always said) or `{text, when: PREDICATE}` (said
only when the predicate holds). A cause may carry `discount: {when, factor, text}` — what the recipe says
against it (clipping already on ⇒ "missing gradient control" ranks lower); an action may carry `when`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import Artifact, Finding, Severity
from doctor.core.probe import ReadError
from doctor.core.rules import SYMPTOMS
from doctor.playbook.recipe import RecipeError, validate_overrides
from probes.common.yamlsafe import load_yaml

PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "playbooks"
ANSWERS = ("yes", "no", "unknown")
_CAUSE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_PREDICATE_KEYS = {
    "any_symptom", "all_symptoms", "any_rule", "min_severity", "fact", "diagnosed", "any", "all", "not", "has_kind",
}  # fmt: skip
_ACTION_KINDS = {"advice", "command", "job"}
_JOB_KINDS = {"retrain", "reeval", "parity"}


class PlaybookError(Exception):
    """A playbook that fails validation: names the file and the node."""

    def __init__(self, path: Path | str, node: str | None, reason: str) -> None:
        where = f"{path}" + (f": node {node!r}" if node else "")
        super().__init__(f"{where}: {reason}")


# ---------------------------------------------------------------- loading and validation


@dataclass
class Playbook:
    name: str
    title: str
    entry: str
    nodes: dict[str, dict[str, Any]]
    path: Path


def node_kind(node: dict[str, Any]) -> str:
    if "visit" in node:
        return "visit"
    if "diagnosis" in node:
        return "leaf"
    return "question"


def edges(node: dict[str, Any]) -> list[str]:
    """Targets a node can go to within its playbook."""
    kind = node_kind(node)
    if kind == "visit":
        return [node["next"]] if node.get("next") else []
    if kind == "leaf":
        return []
    targets = [node[k] for k in ANSWERS if k in node]
    targets.extend((node.get("branches") or {}).values())
    return targets


def _safe_yaml(path: Path) -> Any:
    """The playbook's one document, through the capped loader (a playbook from a user's folder may be hostile:
    an alias bomb is rejected before it is built)."""
    try:
        docs, _ = load_yaml(path)
        return docs[0] if docs else None
    except ReadError as err:
        invalid = "invalid YAML: "
        if err.reason.startswith(invalid):
            where = f" at {err.where}" if err.where else ""
            raise PlaybookError(path, None, f"invalid YAML{where}: {err.reason[len(invalid) :]}") from None
        raise PlaybookError(path, None, err.reason + (f" at {err.where}" if err.where else "")) from None


def load_playbook(path: Path, rule_ids: set[str] | None = None) -> Playbook:
    data = _safe_yaml(path)
    if not isinstance(data, dict):
        raise PlaybookError(path, None, "top level must be a mapping with playbook, entry and nodes")
    for key in ("playbook", "entry", "nodes"):
        if key not in data:
            raise PlaybookError(path, None, f"missing top-level key {key!r}")
    if data["playbook"] != path.stem:
        raise PlaybookError(path, None, f"playbook name {data['playbook']!r} must match the file name {path.stem!r}")
    nodes = data["nodes"]
    if not isinstance(nodes, dict) or not nodes:
        raise PlaybookError(path, None, "nodes must be a non-empty mapping of node id to node")
    pb = Playbook(str(data["playbook"]), str(data.get("title", data["playbook"])), str(data["entry"]), nodes, path)
    if pb.entry not in nodes:
        raise PlaybookError(path, pb.entry, "entry node does not exist")
    for node_id, node in nodes.items():
        if not isinstance(node, dict):
            raise PlaybookError(path, node_id, "a node must be a mapping")
        _normalise_keys(node)
        _validate_node(pb, node_id, node, rule_ids)
    _check_graph(pb)
    return pb


def _normalise_keys(node: dict[str, Any]) -> None:
    """YAML 1.1 reads bare `yes:`/`no:` keys as booleans; playbooks mean the answers."""
    for table in (node, node.get("branches") or {}):
        for key in [k for k in table if isinstance(k, bool)]:
            table["yes" if key else "no"] = table.pop(key)
    if isinstance(node.get("ask"), dict):
        choices = node["ask"].get("choices") or []
        node["ask"]["choices"] = [("yes" if c else "no") if isinstance(c, bool) else str(c) for c in choices]


def _validate_node(pb: Playbook, node_id: str, node: dict[str, Any], rule_ids: set[str] | None) -> None:
    path = pb.path
    kind = node_kind(node)
    for target in edges(node):
        if target not in pb.nodes:
            raise PlaybookError(path, node_id, f"branch to missing node {target!r}")
    if kind == "question":
        if "question" not in node:
            raise PlaybookError(path, node_id, "a question node needs `question` text")
        if "ask" in node:
            choices = node["ask"].get("choices") if isinstance(node["ask"], dict) else None
            branches = node.get("branches") or {}
            if not choices or set(choices) != set(branches):
                raise PlaybookError(path, node_id, "`ask.choices` must list exactly the keys of `branches`")
            if "unknown" not in node:
                raise PlaybookError(path, node_id, "a user question needs an `unknown` branch for headless runs")
        elif "when" in node:
            _validate_predicate(path, node_id, node["when"], rule_ids)
            if "yes" not in node or "no" not in node:
                raise PlaybookError(path, node_id, "a `when` question needs `yes` and `no` branches")
        else:
            raise PlaybookError(path, node_id, "a question needs `when` (a predicate) or `ask` (user choices)")
        if node.get("requires") and "unknown" not in node:
            raise PlaybookError(path, node_id, "`requires` needs an `unknown` branch for missing evidence")
    elif kind == "leaf":
        _validate_diagnosis(path, node_id, node["diagnosis"], rule_ids)
        for i, cause in enumerate(node.get("causes") or []):
            cid = cause.get("cause") if isinstance(cause, dict) else None
            if not isinstance(cid, str) or not _CAUSE_ID.match(cid):
                raise PlaybookError(path, node_id, f"causes[{i}] needs a snake_case `cause` id")
            if "support" in cause:
                _validate_predicate(path, node_id, cause["support"], rule_ids)
            if "discount" in cause:
                d = cause["discount"]
                if not isinstance(d, dict) or "when" not in d or not isinstance(d.get("factor"), (int, float)):
                    raise PlaybookError(path, node_id, f"causes[{i}].discount needs `when` and a numeric `factor`")
                if not 0 <= d["factor"] <= 1:
                    raise PlaybookError(path, node_id, f"causes[{i}].discount.factor must be in [0, 1]")
                _validate_predicate(path, node_id, d["when"], rule_ids)
        for i, action in enumerate(node.get("actions") or []):
            _validate_action(path, node_id, i, action)
            if isinstance(action, dict) and "when" in action:
                _validate_predicate(path, node_id, action["when"], rule_ids)
    elif kind == "visit" and not isinstance(node["visit"], str):
        raise PlaybookError(path, node_id, "`visit` names a playbook")


def _validate_diagnosis(path: Path, node_id: str, diagnosis: Any, rule_ids: set[str] | None) -> None:
    if isinstance(diagnosis, str):
        return
    if not isinstance(diagnosis, list) or not diagnosis:
        raise PlaybookError(path, node_id, "`diagnosis` is text or a non-empty list of parts")
    for i, part in enumerate(diagnosis):
        if isinstance(part, str):
            continue
        if not isinstance(part, dict) or not isinstance(part.get("text"), str) or set(part) - {"text", "when"}:
            raise PlaybookError(path, node_id, f"diagnosis[{i}] is text or {{text, when}}")
        if "when" in part:
            _validate_predicate(path, node_id, part["when"], rule_ids)


def _validate_action(path: Path, node_id: str, i: int, action: Any) -> None:
    if not isinstance(action, dict) or action.get("kind") not in _ACTION_KINDS:
        raise PlaybookError(path, node_id, f"actions[{i}].kind must be one of {sorted(_ACTION_KINDS)}")
    if not action.get("text"):
        raise PlaybookError(path, node_id, f"actions[{i}] needs `text`")
    if action["kind"] == "job":
        job = action.get("job")
        if not isinstance(job, dict) or job.get("kind") not in _JOB_KINDS:
            raise PlaybookError(path, node_id, f"actions[{i}].job.kind must be one of {sorted(_JOB_KINDS)}")
        try:
            validate_overrides(job.get("overrides") or {})
        except RecipeError as exc:
            raise PlaybookError(path, node_id, f"actions[{i}]: {exc}") from None


def _validate_predicate(path: Path, node_id: str, pred: Any, rule_ids: set[str] | None) -> None:
    if not isinstance(pred, dict) or not pred:
        raise PlaybookError(path, node_id, "a predicate is a non-empty mapping")
    unknown_keys = set(pred) - _PREDICATE_KEYS
    if unknown_keys:
        raise PlaybookError(path, node_id, f"unknown predicate keys {sorted(unknown_keys)}")
    for key in ("any_symptom", "all_symptoms"):
        for s in pred.get(key, []):
            if s not in SYMPTOMS:
                raise PlaybookError(path, node_id, f"unknown symptom {s!r}")
    if rule_ids is not None:
        for r in pred.get("any_rule", []):
            if not any(fnmatch.fnmatchcase(x, r) for x in rule_ids):
                raise PlaybookError(path, node_id, f"unknown rule {r!r}")
    if "min_severity" in pred:
        try:
            Severity.parse(pred["min_severity"])
        except ValueError as exc:
            raise PlaybookError(path, node_id, str(exc)) from None
    if "has_kind" in pred and not (
        isinstance(pred["has_kind"], list) and all(isinstance(k, str) for k in pred["has_kind"])
    ):
        raise PlaybookError(path, node_id, "`has_kind` lists artifact kinds (training_log, eval_table, …)")
    if "fact" in pred and not (isinstance(pred["fact"], dict) and "key" in pred["fact"]):
        raise PlaybookError(path, node_id, "`fact` needs at least `key` (and optionally kind, op, value)")
    for sub in pred.get("any", []) + pred.get("all", []):
        _validate_predicate(path, node_id, sub, rule_ids)
    if "not" in pred:
        _validate_predicate(path, node_id, pred["not"], rule_ids)


def _check_graph(pb: Playbook) -> None:
    # Cycles: depth-first search with colours.
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for t in edges(pb.nodes[n]):
            if state.get(t) == 1:
                raise PlaybookError(pb.path, n, f"cycle: {' -> '.join([*trail, n, t])}")
            if t not in state:
                visit(t, [*trail, n])
        state[n] = 2

    visit(pb.entry, [])
    unreachable = [n for n in pb.nodes if n not in state]
    if unreachable:
        raise PlaybookError(pb.path, unreachable[0], "unreachable from the entry node")


def load_all(directory: Path = PLAYBOOK_DIR, rule_ids: set[str] | None = None) -> dict[str, Playbook]:
    books = {p.stem: load_playbook(p, rule_ids) for p in sorted(directory.glob("*.yaml"))}
    # Cross-playbook: every visit names an existing playbook, and visits form no cycle.
    for pb in books.values():
        for node_id, node in pb.nodes.items():
            if node_kind(node) == "visit" and node["visit"] not in books:
                raise PlaybookError(pb.path, node_id, f"visits missing playbook {node['visit']!r}")
    calls = {name: {n["visit"] for n in pb.nodes.values() if node_kind(n) == "visit"} for name, pb in books.items()}

    def dfs(name: str, trail: list[str]) -> None:
        for callee in calls[name]:
            if callee in trail or callee == name:
                pb = books[name]
                node = next(k for k, v in pb.nodes.items() if v.get("visit") == callee)
                raise PlaybookError(pb.path, node, f"playbook cycle: {' -> '.join([*trail, name, callee])}")
            dfs(callee, [*trail, name])

    for name in books:
        dfs(name, [])
    return books


# ---------------------------------------------------------------- evidence and predicates


@dataclass
class Evidence:
    findings: list[Finding]
    artifacts: list[Artifact]
    manifest: dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> set[str]:
        return {a.kind for a in self.artifacts}

    def matching(self, pred: dict[str, Any]) -> list[Finding]:
        """Findings selected by the symptom/rule/severity filters of a predicate."""
        out = self.findings
        if "min_severity" in pred:
            floor = Severity.parse(pred["min_severity"]).rank
            out = [f for f in out if f.severity.rank >= floor]
        if "any_symptom" in pred:
            wanted = set(pred["any_symptom"])
            out = [f for f in out if wanted & set(f.symptoms)]
        if "any_rule" in pred:
            out = [f for f in out if any(fnmatch.fnmatchcase(f.rule, r) for r in pred["any_rule"])]
        return out


def _fact_value(facts: dict[str, Any], key: str) -> Any:
    cur: Any = facts
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "in": lambda a, b: a in b,
}


def _eval_fact(spec: dict[str, Any], ev: Evidence) -> bool | None:
    pool = [a.facts for a in ev.artifacts if "kind" not in spec or a.kind == spec["kind"]]
    if spec.get("kind") == "manifest" and ev.manifest:
        pool.append(ev.manifest)
    values = [v for v in (_fact_value(f, spec["key"]) for f in pool) if v is not None]
    if not values:
        return None  # the fact is not known: evidence missing
    if "value" not in spec:
        return True
    op = _OPS[spec.get("op", "==")]
    try:
        return any(op(v, spec["value"]) for v in values)
    except TypeError:
        return None


def evaluate(pred: dict[str, Any], ev: Evidence, diagnosed: bool = False) -> tuple[bool | None, list[Finding]]:
    """Three-valued: True, False, or None (unknown). Also returns the findings that support it."""
    results: list[bool | None] = []
    support: list[Finding] = []
    if {"any_symptom", "any_rule", "min_severity"} & set(pred):
        hits = ev.matching(pred)
        results.append(bool(hits))
        support.extend(hits)
    if "all_symptoms" in pred:
        present = {s for f in ev.findings for s in f.symptoms}
        results.append(set(pred["all_symptoms"]) <= present)
        support.extend(f for f in ev.findings if set(f.symptoms) & set(pred["all_symptoms"]))
    if "fact" in pred:
        results.append(_eval_fact(pred["fact"], ev))
    if "diagnosed" in pred:
        results.append(diagnosed == bool(pred["diagnosed"]))
    if "has_kind" in pred:  # the evidence holds artifacts of every listed kind (what a text may speak about)
        results.append(set(pred["has_kind"]) <= ev.kinds())
    if "any" in pred:
        subs = [evaluate(p, ev, diagnosed) for p in pred["any"]]
        vals = [v for v, _ in subs]
        results.append(True if True in vals else (None if None in vals else False))
        support.extend(f for v, fs in subs if v for f in fs)
    if "all" in pred:
        subs = [evaluate(p, ev, diagnosed) for p in pred["all"]]
        vals = [v for v, _ in subs]
        results.append(False if False in vals else (None if None in vals else True))
        support.extend(f for _, fs in subs for f in fs)
    if "not" in pred:
        v, _ = evaluate(pred["not"], ev, diagnosed)
        results.append(None if v is None else not v)
    value = False if False in results else (None if None in results else True)
    return value, support


# ---------------------------------------------------------------- walking


@dataclass
class Step:
    playbook: str
    node: str
    question: str
    answer: str
    evidence: list[str]
    # How the answer was reached: "evidence", "user", "missing evidence: …", "headless: unanswered".
    how: str = "evidence"
    choices: list[str] = field(default_factory=list)


@dataclass
class Cause:
    cause: str
    score: float
    evidence: list[str]
    text: str = ""


@dataclass
class Triage:
    path: list[Step]
    leaves: list[str]
    causes: list[Cause]
    actions: list[dict[str, Any]]
    diagnosis: str
    # The first user question left unanswered when walking interactively (the TUI asks it).
    pending: Step | None = None
    # True while the diagnosis text comes only from pass-through leaves (replaced by a real one).
    notes_only: bool = True

    @property
    def leaf(self) -> str:
        return self.leaves[-1] if self.leaves else ""


def diagnosis_text(diagnosis: Any, ev: Evidence) -> str:
    """A leaf's text from the parts whose evidence fired (a plain string is said as it is)."""
    if isinstance(diagnosis, str):
        return " ".join(diagnosis.split())
    parts = []
    for part in diagnosis:
        if isinstance(part, str):
            parts.append(part)
        elif "when" not in part or evaluate(part["when"], ev)[0]:
            parts.append(part["text"])
    return " ".join(" ".join(parts).split())


def _ids(findings: Iterable[Finding]) -> list[str]:
    seen: list[str] = []
    for f in findings:
        if f.rule not in seen:
            seen.append(f.rule)
    return seen


def _coverage(pred: dict[str, Any], support: list[Finding]) -> float:
    """How much of a cause's signature the evidence shows: the share of its listed symptoms (or rules)
    present among the supporting findings. Redundant findings of one symptom count once."""
    if "any_symptom" in pred:
        listed = set(pred["any_symptom"])
        return len(listed & {s for f in support for s in f.symptoms}) / len(listed)
    if "any_rule" in pred:
        rules = pred["any_rule"]
        return sum(any(fnmatch.fnmatchcase(f.rule, r) for f in support) for r in rules) / len(rules)
    return 1.0


def _score_cause(spec: dict[str, Any], ev: Evidence, answered: bool) -> Cause | None:
    """weight × (0.5 + 0.5 × coverage of the cause's signature); dropped when nothing supports it."""
    weight = float(spec.get("weight", 1.0))
    text = spec.get("text", "")
    if "support" in spec:
        value, support = evaluate(spec["support"], ev)
        if not value or not support:
            if not spec.get("prior"):
                return None
            return Cause(spec["cause"], round(weight * float(spec["prior"]), 3), [], text)
        score = weight * (0.5 + 0.5 * _coverage(spec["support"], support))
        d = spec.get("discount")
        if d and evaluate(d["when"], ev)[0]:
            score *= float(d["factor"])
            text = f"{text} ({d['text']})" if d.get("text") else text
        return Cause(spec["cause"], round(score, 3), _ids(support), text)
    # A cause reached by the user's answers alone.
    strength = 0.5 if answered else float(spec.get("prior", 0.3))
    return Cause(spec["cause"], round(weight * strength, 3), [], text)


class Walker:
    def __init__(self, books: dict[str, Playbook]) -> None:
        self.books = books

    def check_answers(self, entry: str, answers: dict[str, str]) -> None:
        """Every answer must name a question node reachable from `entry` and one of its choices."""
        nodes: dict[str, tuple[str, dict]] = {}
        todo, seen = [entry], set()
        while todo:
            book = todo.pop()
            if book in seen:
                continue
            seen.add(book)
            for node_id, node in self.books[book].nodes.items():
                if node_kind(node) == "question":
                    nodes[f"{book}.{node_id}"] = (book, node)
                    nodes.setdefault(node_id, (book, node))
                elif node_kind(node) == "visit":
                    todo.append(node["visit"])
        for key, given in answers.items():
            if key not in nodes:
                raise PlaybookError(
                    self.books[entry].path, key, "no such question; `doctor playbooks show NAME` lists the nodes"
                )
            book, node = nodes[key]
            choices = list(node["ask"]["choices"]) if "ask" in node else ["yes", "no"]
            if given not in [*choices, "unknown"]:
                raise PlaybookError(
                    self.books[book].path, key, f"answer {given!r} is not one of {', '.join(choices)} or unknown"
                )

    def walk(
        self, ev: Evidence, entry: str = "triage", answers: dict[str, str] | None = None, interactive: bool = False
    ) -> Triage:
        answers = answers or {}
        result = Triage(path=[], leaves=[], causes=[], actions=[], diagnosis="")
        self._walk_book(entry, ev, answers, interactive, result)
        result.causes.sort(key=lambda c: (-c.score, c.cause))
        return result

    def _walk_book(self, name: str, ev: Evidence, answers: dict[str, str], interactive: bool, out: Triage) -> bool:
        """Walk one playbook; False when stopped at a pending user question."""
        pb = self.books[name]
        node_id = pb.entry
        while True:
            node = pb.nodes[node_id]
            kind = node_kind(node)
            if kind == "leaf":
                self._collect_leaf(name, node_id, node, ev, answers, out)
                return True
            if kind == "visit":
                out.path.append(Step(name, node_id, f"visit {node['visit']}", "visited", [], "playbook"))
                if not self._walk_book(node["visit"], ev, answers, interactive, out):
                    return False
                if not node.get("next"):
                    return True
                node_id = node["next"]
                continue
            step = self._answer(name, node_id, node, ev, answers, bool(out.causes))
            out.path.append(step)
            if step.how == "pending" and interactive:
                out.pending = step
                return False
            node_id = self._next(node, step.answer)

    @staticmethod
    def _next(node: dict[str, Any], answer: str) -> str:
        if answer in (node.get("branches") or {}):
            return node["branches"][answer]
        if answer in node:
            return node[answer]
        return node["no"]  # `unknown` without its own branch: validated `when` questions fall to `no`

    def _answer(self, book: str, node_id: str, node: dict, ev: Evidence, answers: dict, diagnosed: bool) -> Step:
        key = f"{book}.{node_id}"
        given = answers.get(key, answers.get(node_id))
        choices = list(node["ask"]["choices"]) if "ask" in node else ["yes", "no"]
        if given is not None:
            if given not in [*choices, "unknown"]:
                raise PlaybookError(
                    self.books[book].path, node_id, f"answer {given!r} is not one of {', '.join(choices)} or unknown"
                )
            return Step(book, node_id, node["question"], given, [], "user", choices)
        missing = [k for k in node.get("requires", []) if k not in ev.kinds()]
        if missing:
            return Step(
                book, node_id, node["question"], "unknown", [], f"missing evidence: no {', '.join(missing)}", choices
            )
        if "ask" in node:
            return Step(book, node_id, node["question"], "unknown", [], "pending", choices)
        value, support = evaluate(node["when"], ev, diagnosed)
        if value is None:
            return Step(book, node_id, node["question"], "unknown", _ids(support), "missing evidence", choices)
        return Step(book, node_id, node["question"], "yes" if value else "no", _ids(support), "evidence", choices)

    def _collect_leaf(self, book: str, node_id: str, node: dict, ev: Evidence, answers: dict, out: Triage) -> None:
        out.leaves.append(f"{book}.{node_id}")
        answered = any(s.how == "user" for s in out.path)
        for spec in node.get("causes") or []:
            cause = _score_cause(spec, ev, answered)
            if cause is None:
                continue
            existing = next((c for c in out.causes if c.cause == cause.cause), None)
            if existing is None:
                out.causes.append(cause)
            elif cause.score > existing.score:
                existing.score, existing.evidence = cause.score, cause.evidence
        for action in node.get("actions") or []:
            if "when" in action and not evaluate(action["when"], ev)[0]:
                continue
            action = {k: v for k, v in action.items() if k != "when"}
            if action not in out.actions:
                out.actions.append(action)
        # Leaves that diagnose (causes or actions) add their text; pass-through leaves ("no instability
        # found") speak only when nothing else has.
        text = diagnosis_text(node["diagnosis"], ev)
        if node.get("causes") or node.get("actions"):
            out.diagnosis = f"{out.diagnosis}\n{text}".strip() if out.notes_only is False else text
            out.notes_only = False
        elif not out.diagnosis or out.notes_only:
            out.diagnosis = text
