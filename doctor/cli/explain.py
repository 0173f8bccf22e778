"""`doctor explain ID`: one rule's explanation, fix and tunable settings."""

from __future__ import annotations

import argparse

from doctor.cli.common import EXIT_OK, CliError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="explain one rule")
    p.add_argument("rule_id", metavar="ID")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from probes import rule_registry

    try:
        r = rule_registry().get(args.rule_id)
    except KeyError:
        raise CliError(f"unknown rule {args.rule_id!r}; `doctor rules` lists them") from None
    print(f"{r.id}: {r.title}")
    print(f"severity: {r.severity.value}" + (f"   symptoms: {', '.join(r.symptoms)}" if r.symptoms else ""))
    print()
    print(r.explanation)
    print()
    print(f"Fix: {r.fix}")
    if r.params:
        print()
        print(f"Settings ([thresholds.{r.id}] in doctor.toml):")
        for k, v in r.params.items():
            print(f"  {k} = {v!r}")
    return EXIT_OK
