"""JUnit XML report in the strict Apache Ant format (validates against shared/schemas/junit.xsd).

One <testsuite> per artifact (name = its display path); one failing <testcase> per finding (every finding is
a <failure>, whatever its severity, so `failures` == number of findings and `errors` is always 0); one
passing <testcase> per probe that checked the artifact and found nothing, so a clean run still has tests.
The failure text is also in the element body (GitLab shows the body).
"""

from __future__ import annotations

import json
import re
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from doctor.core.model import Finding, Report, display_path
from doctor.render.console_report import Group, action_command, action_text, group_findings, passed_probes
from doctor.render.escape import readable
from doctor.render.json_report import jsonable

# Characters XML 1.0 cannot carry at all (even escaped).
_ILLEGAL_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    return _ILLEGAL_XML.sub("\ufffd", readable(str(text)))


def _hostname() -> str:
    try:
        name = socket.gethostname().strip()
    except OSError:
        name = ""
    return name or "localhost"


def _classname(group: Group, finding: Finding | None = None) -> str:
    if group.artifact is not None:
        return f"peft-doctor.{group.kind}"
    if finding is not None:
        return f"peft-doctor.{finding.rule[:3].lower()}"
    return "peft-doctor.check"


def _case_name(finding: Finding, group: Group, cwd: Any) -> str:
    name = finding.rule
    if finding.locator:
        name += f" {finding.locator}"
    shown = display_path(finding.path, cwd)
    if shown and shown != group.label:
        name += f" [{shown}]"
    return name


def _body(finding: Finding, cwd: Any, group: Group) -> str:
    lines = [f"[{finding.severity.value}] {finding.rule} {finding.title}", finding.message]
    shown = display_path(finding.path, cwd)
    if shown:
        lines.append(f"File: {shown}" + (f" (line {finding.line})" if finding.line > 1 else ""))
    if finding.locator:
        lines.append(f"Locator: {finding.locator}")
    if finding.symptoms:
        lines.append("Symptoms: " + ", ".join(finding.symptoms))
    if finding.evidence:
        ev = json.dumps(jsonable(finding.evidence, cwd), ensure_ascii=False, allow_nan=False, default=str)
        lines.append("Evidence: " + (ev if len(ev) <= 2000 else ev[:1999] + "…"))
    if finding.fix:
        lines.append(f"Advice: {finding.fix}")
    if finding.action is not None:
        target = (group.artifact.rollout or group.artifact.path) if group.artifact is not None else finding.path
        lines.append(f"Advice: {action_text(finding.action)}: run `{action_command(finding.action, target, cwd)}`")
    return "\n".join(lines)


def build(report: Report, ctx: Any) -> ET.Element:
    root = ET.Element("testsuites")  # the Ant schema allows no attributes here
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    hostname = _hostname()
    groups = group_findings(report, ctx.cwd)
    if not groups:
        groups = [Group("peft-doctor", "check")]
    for idx, group in enumerate(groups):
        passed = passed_probes(report, group)
        cases = len(group.findings) + len(passed)
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": _x(group.label) or "peft-doctor",
                "package": _x(_classname(group, group.findings[0] if group.findings else None)),
                "id": str(idx),
                "timestamp": timestamp,
                "hostname": _x(hostname),
                "tests": str(cases if cases else 1),
                "failures": str(len(group.findings)),
                "errors": "0",
                "skipped": "0",
                "time": "0",
            },
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "kind", "value": _x(group.kind)})
        if ctx.version:
            ET.SubElement(props, "property", {"name": "peft-doctor.version", "value": _x(ctx.version)})
        for f in group.findings:
            case = ET.SubElement(
                suite,
                "testcase",
                {"name": _x(_case_name(f, group, ctx.cwd)), "classname": _x(_classname(group, f)), "time": "0"},
            )
            failure = ET.SubElement(
                case, "failure", {"message": _x(f"{f.title}: {f.message}" if f.message else f.title), "type": f.rule}
            )
            failure.text = _x(_body(f, ctx.cwd, group))
        for name in passed:
            ET.SubElement(suite, "testcase", {"name": _x(name), "classname": _x(_classname(group)), "time": "0"})
        if not cases:
            # An artifact no probe applies to still shows up as one (passing) test.
            ET.SubElement(suite, "testcase", {"name": "discovered", "classname": _x(_classname(group)), "time": "0"})
        ET.SubElement(suite, "system-out").text = ""
        ET.SubElement(suite, "system-err").text = ""
    return root


def render(report: Report, ctx: Any) -> str:
    root = build(report, ctx)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
