"""View models for the app: rows, filtering, sorting, artifact status. No Textual here (testable alone)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from doctor.core.model import Artifact, Finding, Report, Severity

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
OK_GLYPH = "✓"
SORT_KEYS = ("severity", "rule", "artifact", "title")


def rel(path: Path | None, base: Path | None) -> str:
    """A path shown relative to the scanned folder (stable across machines and snapshot runs)."""
    if path is None:
        return ""
    if base is not None:
        try:
            shown = path.resolve().relative_to(base.resolve()).as_posix()
            return shown if shown != "." else path.name or "."
        except ValueError:
            pass
    return path.as_posix()


def common_base(targets: list[Path]) -> Path | None:
    """The folder paths are shown relative to: the single target folder, else the targets' common parent."""
    if not targets:
        return None
    resolved = [t.resolve() for t in targets]
    if len(resolved) == 1:
        t = resolved[0]
        return t if t.is_dir() else t.parent
    parts = list(zip(*(p.parts for p in resolved)))
    common = [ps[0] for ps in parts if all(x == ps[0] for x in ps)]
    return Path(*common) if common else None


@dataclass
class Row:
    """One finding as the table shows it; `key` is its index in the report."""

    key: int
    finding: Finding
    severity: str
    rule: str
    artifact: str
    title: str
    haystack: str = field(repr=False, default="")
    locator: str = ""

    @property
    def rank(self) -> int:
        return self.finding.severity.rank


def make_rows(findings: list[Finding], base: Path | None) -> list[Row]:
    rows = []
    for i, f in enumerate(findings):
        shown = rel(f.path, base)
        hay = " ".join((f.rule, f.severity.value, shown, f.title, f.locator, f.message, " ".join(f.symptoms))).lower()
        rows.append(Row(i, f, f.severity.value, f.rule, shown, f.title, hay, f.locator))
    return rows


def parse_query(query: str) -> tuple[list[str], set[str], list[str]]:
    """`sev:error` / `error` / `e` words select severities, `rule:TRN*` globs rules, other words must all
    appear (case-insensitive) in the rule, path, title, locator, message or symptoms."""
    words: list[str] = []
    sevs: set[str] = set()
    rules: list[str] = []
    for tok in query.lower().split():
        if tok.startswith(("sev:", "severity:")):
            val = tok.split(":", 1)[1]
            sevs.update(s.value for s in Severity if s.value.startswith(val) and val)
        elif tok.startswith("rule:"):
            rules.append(tok.split(":", 1)[1].upper() or "*")
        else:
            words.append(tok)
    return words, sevs, rules


def filter_rows(rows: list[Row], query: str) -> list[Row]:
    query = query.strip()
    if not query:
        return list(rows)
    words, sevs, rules = parse_query(query)
    out = []
    for r in rows:
        if sevs and r.severity not in sevs:
            continue
        if rules and not any(fnmatch.fnmatchcase(r.rule, g if any(c in g for c in "*?[") else g + "*") for g in rules):
            continue
        if all(w in r.haystack for w in words):
            out.append(r)
    return out


def sort_rows(rows: list[Row], key: str = "severity", reverse: bool = False) -> list[Row]:
    if key == "severity":
        # most severe first, then artifact, rule (the engine's order)
        return sorted(rows, key=lambda r: (-r.rank, r.artifact, r.rule, r.key), reverse=reverse)
    if key == "rule":
        return sorted(rows, key=lambda r: (r.rule, -r.rank, r.artifact), reverse=reverse)
    if key == "artifact":
        return sorted(rows, key=lambda r: (r.artifact, -r.rank, r.rule), reverse=reverse)
    if key == "locator":
        return sorted(rows, key=lambda r: (r.locator, -r.rank, r.artifact), reverse=reverse)
    return sorted(rows, key=lambda r: (r.title.lower(), r.locator, -r.rank), reverse=reverse)


def artifact_status(report: Report) -> dict[str, Severity | None]:
    """Worst severity of the findings on each artifact (None: clean)."""
    worst: dict[str, Severity | None] = {str(a.path.resolve()): None for a in report.artifacts}
    for f in report.findings:
        if f.path is None:
            continue
        key = str(f.path.resolve())
        # a finding on a file inside an artifact folder counts for that folder
        target = key if key in worst else next((k for k in worst if key.startswith(k + "/")), None)
        if target is None:
            continue
        cur = worst[target]
        if cur is None or f.severity.rank > cur.rank:
            worst[target] = f.severity
    return worst


def glyph(sev: Severity | str | None) -> str:
    if sev is None:
        return OK_GLYPH
    return Severity(sev).glyph if isinstance(sev, str) else sev.glyph


def facts_for(report: Report | None, finding: Finding) -> dict:
    """Facts of the artifact a finding is about (adapter layer tables feed its plot)."""
    if report is None or finding.path is None:
        return {}
    p = finding.path.resolve()
    best: Artifact | None = None
    for a in report.artifacts:
        ap = a.path.resolve()
        if (p == ap or ap in p.parents) and (best is None or len(str(ap)) > len(str(best.path))):
            best = a
    return best.facts if best else {}


def rollout_roots(report: Report) -> list[Path]:
    """Rollout folders in the report, as triage groups them: an artifact's manifest folder, else the
    scanned target that holds it."""
    targets = [(t.resolve() if t.is_dir() else t.resolve().parent) for t in report.targets]
    roots: set[Path] = set()
    for a in report.artifacts:
        if a.rollout is not None:
            roots.add(a.rollout.resolve())
            continue
        p = a.path.resolve()
        holder = [t for t in targets if t == p or t in p.parents]
        roots.add(max(holder, key=lambda t: len(str(t))) if holder else p.parent)
    return sorted(roots, key=str)


def rollout_of(path: Path | None, roots: list[Path]) -> Path | None:
    if path is None:
        return None
    p = path.resolve()
    best = None
    for r in roots:
        if (p == r or r in p.parents) and (best is None or len(str(r)) > len(str(best))):
            best = r
    return best
