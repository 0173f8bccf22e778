"""W&B offline run folders (wandb/offline-run-*/). The history lives in the binary run-<id>.wandb
(not read); what is readable: files/output.log (the console, where HF Trainer prints one dict per
logging step), files/wandb-summary.json (final values) and files/config.yaml (through the capped YAML
loader: a config that is not a mapping, too large, or an alias bomb is skipped with DOC001 naming it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from doctor.core.probe import ReadError
from doctor.core.safeio import loads_json
from probes.training.readers.records import records_to_series
from probes.training.series import Series

_DICT = re.compile(r"\{[^{}\n]*'(?:loss|eval_loss|train/loss)'[^{}\n]*\}")
_PAIR = re.compile(r"'([^']+)':\s*('(?:[^']*)'|[^,}]+)")


def _value(raw: str):
    raw = raw.strip()
    if raw.startswith("'"):
        return raw.strip("'")
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)  # handles nan / inf
    except ValueError:
        return raw


def parse_output_log(text: str) -> list[dict]:
    out = []
    for m in _DICT.finditer(text):
        out.append({k: _value(v) for k, v in _PAIR.findall(m.group(0))})
    return out


def read_config(cfg: Path, s: Series) -> dict[str, Any]:
    """W&B's config.yaml ({key: {value: ...}} per setting) as plain key -> value; {} when it cannot be used.
    Invalid YAML is an unreadable entry of the run (TRN010, as before); a document that is not a mapping
    or that the capped loader refuses (size, alias bomb) is DOC001 on config.yaml itself."""
    from probes.common.yamlsafe import load_yaml_text

    try:
        docs = load_yaml_text(cfg.read_text(errors="replace"), cfg)
    except ReadError as err:
        if err.reason.startswith("invalid YAML"):
            at = f" at {err.where}" if err.where else ""
            s.problem(
                "entry", "files/config.yaml", f"config.yaml is not YAML: {err.reason[len('invalid YAML: ') :]}{at}"
            )
        else:
            s.problem("doc", err.where, f"{err.reason}; the run's settings were not read", path=cfg)
        return {}
    raw = (docs[0] if docs else None) or {}
    if not isinstance(raw, dict):
        s.problem(
            "doc",
            "",
            f"not a mapping of run settings (a YAML {type(raw).__name__}); the run's settings were not read",
            path=cfg,
        )
        return {}
    return {k: (v.get("value") if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()}


def read_wandb_run(run: Path, overrides: dict[str, str] | None = None) -> Series:
    s = Series(format="wandb_offline")
    files = run / "files"
    cfg = files / "config.yaml"
    config = read_config(cfg, s) if cfg.is_file() else {}
    s.meta["config"] = {k: config[k] for k in list(config)[:200] if not str(k).startswith("_")}
    binaries = sorted(p.name for p in run.glob("*.wandb"))
    if binaries:
        s.meta["history_binary_not_read"] = binaries
    summary = {}
    sp = files / "wandb-summary.json"
    if sp.is_file():
        try:
            summary = loads_json(sp.read_text(errors="replace") or "{}")
        except ValueError as exc:
            s.problem("entry", "files/wandb-summary.json", f"wandb-summary.json is not JSON: {exc}")
    s.meta["summary"] = {k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and not k.startswith("_")}
    logp = files / "output.log"
    records = parse_output_log(logp.read_text(errors="replace")) if logp.is_file() else []
    if records:
        logging_steps = config.get("logging_steps")
        records_to_series(records, s, where="output.log dict ", overrides=overrides, index_steps=True)
        if isinstance(logging_steps, int) and logging_steps > 0:
            s.steps = s.steps * logging_steps
            s.meta["steps_from"] = f"entry order x logging_steps={logging_steps}"
        else:
            s.meta["steps_from"] = "entry order (no step numbers in output.log)"
        return s
    if summary:
        rec = {k: v for k, v in summary.items() if not k.startswith("_")}
        rec["step"] = summary.get("train/global_step", summary.get("_step", 0))
        s.meta["steps_from"] = "wandb-summary.json (final values only)"
        return records_to_series([rec], s, where="summary ", overrides=overrides)
    s.problem(
        "doc",
        str(run.name),
        "no readable history: output.log has no logged dicts and there is no wandb-summary.json "
        "(the .wandb binary is not read)",
    )
    return s
