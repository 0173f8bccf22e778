"""Settings from `[tool.doctor]` in pyproject.toml or from doctor.toml.

```toml
fail_on = "warning"              # error | warning | info | never
disable = ["TRN007"]             # rules that never run
[thresholds.TRN002]              # per-rule tunables (see `doctor explain ID`)
z = 8.0
[[ignore]]                       # suppress matching findings; a reason is required
rule = "ADP004"
path = "fixtures/rollouts/*/adapter"   # glob on the reported path (optional)
locator = "layers.0.*"                 # glob on the locator (optional)
reason = "known rank underuse, tracked in #12"
expires = "2027-03-01"                 # optional; after it the findings come back
[eval]                           # tables read by probe families: training, adapter, eval, serving, registry
baseline_variant = "base"
```
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor.core.model import fail_rank
from doctor.core.rules import Rule

_KNOWN_KEYS = {"fail_on", "disable", "thresholds", "ignore"}


class ConfigError(Exception):
    """Bad settings: the CLI exits 2 with this message."""


@dataclass
class Ignore:
    rule: str
    reason: str
    path: str = "*"
    locator: str = "*"
    expires: dt.date | None = None

    def matches(self, rule: str, path: str, locator: str) -> bool:
        return (
            fnmatch.fnmatchcase(rule, self.rule)
            and fnmatch.fnmatchcase(path, self.path)
            and fnmatch.fnmatchcase(locator, self.locator)
        )

    def expired(self, today: dt.date | None = None) -> bool:
        return self.expires is not None and (today or dt.date.today()) > self.expires


@dataclass
class Settings:
    fail_on: str = "error"
    disable: set[str] = field(default_factory=set)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignores: list[Ignore] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


def load_settings(explicit: Path | None = None, cwd: Path | None = None) -> Settings:
    """Explicit --config FILE, else doctor.toml, else pyproject.toml's [tool.doctor] in cwd."""
    cwd = cwd or Path.cwd()
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: settings file not found")
        return _from_file(explicit)
    doctor_toml = cwd / "doctor.toml"
    if doctor_toml.is_file():
        return _from_file(doctor_toml)
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        table = data.get("tool", {}).get("doctor")
        if table is not None:
            return parse_settings(table, pyproject)
    return Settings()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _from_file(path: Path) -> Settings:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("doctor", {})
    elif "tool" in data and "doctor" in data["tool"]:
        data = data["tool"]["doctor"]
    return parse_settings(data, path)


def parse_settings(data: dict[str, Any], source: Path | None = None) -> Settings:
    where = f"{source}: " if source else ""
    s = Settings(source=source)
    fail_on = data.get("fail_on", data.get("fail-on", "error"))
    try:
        fail_rank(str(fail_on))
    except ValueError:
        raise ConfigError(f"{where}fail_on = {fail_on!r}; expected error, warning, info or never") from None
    s.fail_on = str(fail_on)

    disable = data.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(x, str) for x in disable):
        raise ConfigError(f"{where}disable must be a list of rule ids")
    s.disable = {x.upper() for x in disable}

    thresholds = data.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(isinstance(v, dict) for v in thresholds.values()):
        raise ConfigError(f"{where}[thresholds.RULE] tables expected, e.g. [thresholds.TRN002] z = 8")
    s.thresholds = {k.upper(): dict(v) for k, v in thresholds.items()}

    ignores = data.get("ignore", [])
    if not isinstance(ignores, list):
        raise ConfigError(f"{where}ignore must be an array of tables ([[ignore]])")
    for i, entry in enumerate(ignores):
        if not isinstance(entry, dict) or "rule" not in entry:
            raise ConfigError(f"{where}ignore[{i}] needs a `rule`")
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise ConfigError(f"{where}ignore[{i}] ({entry['rule']}) has no reason; every ignore needs one")
        expires = entry.get("expires")
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{where}ignore[{i}] expires {expires!r} is not YYYY-MM-DD") from None
        elif isinstance(expires, dt.datetime):
            expires = expires.date()
        elif expires is not None and not isinstance(expires, dt.date):
            raise ConfigError(f"{where}ignore[{i}] expires must be a date")
        s.ignores.append(
            Ignore(
                rule=str(entry["rule"]).upper(),
                reason=reason,
                path=str(entry.get("path", "*")),
                locator=str(entry.get("locator", "*")),
                expires=expires,
            )
        )
    s.sections = {k: v for k, v in data.items() if k not in _KNOWN_KEYS and k != "fail-on"}
    return s


# Free-form tables the probe families read (ctx.section(NAME)).
SECTIONS = frozenset({"training", "adapter", "eval", "serving", "registry", "paths"})


def validate_against(settings: Settings, rules: Iterable[Rule]) -> None:
    """Settings that name a rule, a threshold or a table doctor does not have, or give a threshold a value of
    the wrong type, are a config error (exit 2) — a typo must not silently turn a check off or on."""
    where = f"{settings.source}: " if settings.source else ""
    by_id = {r.id: r for r in rules}
    unknown_tables = sorted(set(settings.sections) - SECTIONS)
    if unknown_tables:
        raise ConfigError(
            f"{where}unknown setting(s) {', '.join(unknown_tables)}; known: fail_on, disable, thresholds, ignore, "
            f"and the tables {', '.join(sorted(SECTIONS))}"
        )
    for rid in sorted(settings.disable | set(settings.thresholds)):
        if rid not in by_id:
            raise ConfigError(f"{where}unknown rule {rid} (see `doctor rules`)")
    for rid, values in settings.thresholds.items():
        params = by_id[rid].params
        for name, value in values.items():
            if name not in params:
                known = ", ".join(params) or "none"
                raise ConfigError(f"{where}[thresholds.{rid}] has no setting {name!r} (known: {known})")
            if not _same_kind(params[name], value):
                raise ConfigError(
                    f"{where}[thresholds.{rid}] {name} = {value!r}: expected a {type(params[name]).__name__} "
                    f"like the default {params[name]!r}"
                )
    for ig in settings.ignores:
        if not any(fnmatch.fnmatchcase(r, ig.rule) for r in by_id):
            raise ConfigError(f"{where}ignore rule {ig.rule} matches no rule (see `doctor rules`)")


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return default is None or isinstance(value, type(default))
