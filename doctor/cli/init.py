"""`doctor init PATH` — write rollout.toml for a Trainer/TRL output folder or a bare adapter folder.

Exit 0: written, and a corrective job can run; 1: written, but pieces are still missing (named, with the
flags that supply them); 2: usage errors (no such folder, nothing doctor can describe, rollout.toml exists
without --force). Headless with flags; on a terminal it asks for what it could not read (--no-input: never).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doctor.cli.common import CliError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="write rollout.toml for a Trainer/TRL output or adapter folder made outside doctor")
    p.add_argument("path", type=Path, help="the Trainer/TRL output folder or adapter folder")
    p.add_argument("--base-model", type=Path, metavar="DIR", help="local base model folder (with config.json)")
    p.add_argument("--train-data", type=Path, metavar="FILE", help="training data (JSONL: prompt, response, slice)")
    p.add_argument("--eval-set", type=Path, metavar="FILE", help="eval set (JSONL) for the re-eval after a retrain")
    p.add_argument("--baseline", type=Path, metavar="FILE", help="eval table of the base model (CSV/JSONL)")
    p.add_argument("--method", choices=("lora", "qlora"), help="lora (default) or qlora (a 4-bit base)")
    p.add_argument("--name", help="rollout name (default: the folder name)")
    p.add_argument("--adapter-name", help="adapter name in the registry (default: the folder name)")
    p.add_argument("--force", action="store_true", help="replace an existing rollout.toml")
    p.add_argument("--no-input", action="store_true", help="never prompt, even on a terminal")
    p.add_argument("--format", "-f", choices=("console", "json"), default="console")
    p.set_defaults(handler=cmd_init)


_ASK = {
    "base model (--base-model DIR)": ("base_model", "Local base model folder (with config.json)"),
    "training data (--train-data FILE)": ("train_data", "Training data JSONL (prompt, response, slice)"),
}


def _ask(args: argparse.Namespace, missing: list[str]) -> bool:
    """Prompt for the pieces a terminal user can type; True when something new was given."""
    asked = False
    for m in missing:
        if m not in _ASK:
            continue
        attr, question = _ASK[m]
        answer = input(f"{question} (empty to skip): ").strip()
        if answer:
            setattr(args, attr, Path(answer).expanduser())
            asked = True
    return asked


def cmd_init(args: argparse.Namespace) -> int:
    from doctor.jobs.rollout_init import InitError, as_json, discover, write

    def find():
        return discover(
            args.path,
            base_model=args.base_model,
            train_data=args.train_data,
            eval_set=args.eval_set,
            baseline=args.baseline,
            method=args.method,
            name=args.name,
            adapter_name=args.adapter_name,
        )

    try:
        if (args.path / "rollout.toml").exists() and not args.force:
            raise InitError(f"{args.path / 'rollout.toml'} exists; --force replaces it")
        found = find()
        interactive = not args.no_input and sys.stdin.isatty() and args.format == "console"
        if found.missing and interactive and _ask(args, found.missing):
            found = find()
        path = write(found, force=args.force)
    except InitError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print(as_json(found, path))
    else:
        print(f"wrote {path}")
        for r in found.read:
            print(f"  read {r}")
        for w in found.warnings:
            print(f"  note: {w}")
        if found.missing:
            flags = " ".join(m[m.index("(") + 1 : m.index(")")] for m in found.missing if "(" in m)
            print(f"  missing: {', '.join(found.missing)}")
            print(f"  a corrective job needs them: doctor init {args.path} --force {flags}".rstrip())
        else:
            print(f"  next: doctor triage {args.path}   then: doctor fix {args.path}")
    return 1 if found.missing else 0
