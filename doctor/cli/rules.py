"""`doctor rules`: every rule doctor can raise (text or JSON)."""

from __future__ import annotations

import argparse
import json

from doctor.cli.common import EXIT_OK


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="list every rule")
    p.add_argument("--format", "-f", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from probes import rule_registry

    rules = list(rule_registry())
    if args.format == "json":
        payload = [
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity.value,
                "symptoms": list(r.symptoms),
                "params": r.params,
            }
            for r in rules
        ]
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    for r in rules:
        tags = ", ".join(r.symptoms)
        print(f"{r.id}  {r.severity.value:<7}  {r.title}" + (f"  [{tags}]" if tags else ""))
    print(f"\n{len(rules)} rules. `doctor explain ID` for details.")
    return EXIT_OK
