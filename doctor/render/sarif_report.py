"""SARIF 2.1.0 report for GitHub code scanning and other SARIF consumers (see ci-formats.md).

One run; `tool.driver.rules[]` lists every rule that appears in the results; URIs are repo-relative
(relative to the working directory, `uriBaseId: %SRCROOT%`); `partialFingerprints` carry the finding's
logical identity so code scanning de-duplicates across runs. At most 25,000 results (a run-level
notification says when some were left out).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from doctor.core.model import Finding, Report, Severity, display_path
from doctor.render.escape import file_uri, uri_path

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/peft-doctor/peft-doctor"
MAX_RESULTS = 25_000
FINGERPRINT_KEY = "peftDoctor/v1"
SRCROOT = "%SRCROOT%"

LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def level(severity: Severity) -> str:
    return LEVELS[severity]


def _rule_name(title: str, rule_id: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", title)
    return "".join(w[:1].upper() + w[1:] for w in words) or rule_id


def _nonempty(text: str, fallback: str) -> str:
    return text if text and text.strip() else fallback


def _rule_descriptor(rule_id: str, sample: Finding, ctx: Any) -> dict[str, Any]:
    registry = getattr(ctx, "rules", None)
    rule = registry.get(rule_id) if registry is not None and rule_id in registry else None
    title = _nonempty(rule.title if rule else sample.title, rule_id)
    explanation = _nonempty(rule.explanation if rule else "", title)
    fix = _nonempty(rule.fix if rule else sample.fix, "See `doctor explain " + rule_id + "`.")
    severity = rule.severity if rule else sample.severity
    symptoms = list(rule.symptoms if rule else sample.symptoms)
    return {
        "id": rule_id,
        "name": _rule_name(title, rule_id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": explanation},
        "help": {
            "text": f"{explanation}\n\nFix: {fix}",
            "markdown": f"**{title}** (`{rule_id}`)\n\n{explanation}\n\n**Fix:** {fix}",
        },
        "defaultConfiguration": {"level": level(severity)},
        "properties": {"tags": symptoms},
    }


def artifact_location(finding: Finding, ctx: Any) -> dict[str, Any]:
    path = finding.path
    if path is None:
        settings = getattr(ctx, "settings_path", None)
        path = Path(settings) if settings else None
    if path is None:
        return {"uri": ".", "uriBaseId": SRCROOT}
    shown = display_path(path, ctx.cwd)
    if Path(shown).is_absolute():
        # Outside the working directory: an absolute file URI (no base id).
        return {"uri": file_uri(shown)}
    return {"uri": uri_path(shown), "uriBaseId": SRCROOT}


def _message(finding: Finding) -> str:
    text = finding.message.strip() if finding.message else ""
    if finding.locator:
        text = f"{text} (at {finding.locator})" if text else f"at {finding.locator}"
    return _nonempty(text, _nonempty(finding.title, finding.rule))


def _result(finding: Finding, rule_index: int, ctx: Any) -> dict[str, Any]:
    shown = display_path(finding.path, ctx.cwd)
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": _message(finding)},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": artifact_location(finding, ctx),
                    "region": {"startLine": max(1, int(finding.line or 1))},
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint(shown)},
        "properties": {"symptoms": list(finding.symptoms)},
    }
    if finding.locator:
        result["properties"]["locator"] = finding.locator
    if finding.fix:
        result["properties"]["fix"] = finding.fix
    return result


def sarif_log(report: Report, ctx: Any) -> dict[str, Any]:
    findings = sorted(report.findings, key=lambda f: -f.severity.rank)  # keep the worst when truncating
    kept = findings[:MAX_RESULTS]
    dropped = len(findings) - len(kept)
    rule_ids = sorted({f.rule for f in kept})
    samples = {}
    for f in kept:
        samples.setdefault(f.rule, f)
    rules = [_rule_descriptor(rid, samples[rid], ctx) for rid in rule_ids]
    index = {rid: i for i, rid in enumerate(rule_ids)}
    # Results in the report's own order (stable), restricted to those kept.
    kept_ids = {id(f) for f in kept}
    results = [_result(f, index[f.rule], ctx) for f in report.findings if id(f) in kept_ids]
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if dropped:
        invocation["toolExecutionNotifications"] = [
            {
                "level": "warning",
                "message": {
                    "text": f"{dropped} of {len(findings)} results were left out: SARIF consumers accept at most "
                    f"{MAX_RESULTS} results a run. Use --format json for the full list."
                },
            }
        ]
    driver: dict[str, Any] = {"name": "peft-doctor", "informationUri": INFORMATION_URI, "rules": rules}
    if ctx.version:
        driver["version"] = ctx.version
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "originalUriBaseIds": {SRCROOT: {"uri": _dir_uri(Path(ctx.cwd))}},
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _dir_uri(path: Path) -> str:
    uri = file_uri(path.resolve().as_posix())
    return uri if uri.endswith("/") else uri + "/"


def render(report: Report, ctx: Any) -> str:
    return json.dumps(sarif_log(report, ctx), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
