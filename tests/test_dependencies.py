"""The dependency list in pyproject.toml is true: every third-party module the code imports is declared in
the extra that code runs under, and every declared core dependency is imported by the core."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

# Import name → distribution name, where they differ.
DIST = {
    "yaml": "pyyaml",
    "ruamel": "ruamel.yaml",
    "textual_plotext": "textual-plotext",
    "google": "protobuf",
    "lxml": "lxml",
}


def _declared(items: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", item, maxsplit=1)[0].lower() for item in items}


def _imports(files: list[Path]) -> dict[str, set[str]]:
    """Distribution → files importing it (lazy imports inside functions included)."""
    out: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("doctor", "probes", "tests", "fixtures", "bench"):
                    continue
                if any((REPO / d / f"{top}.py").exists() for d in (path.parent, "tests", "bench")):
                    continue  # a local script's module (fixtures/synth.py, tests/test_tui_support.py)
                out.setdefault(DIST.get(top, top).lower().replace("_", "-"), set()).add(
                    path.relative_to(REPO).as_posix()
                )
    return out


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _py(*folders: str) -> list[Path]:
    return [p for f in folders for p in (REPO / f).rglob("*.py")]


def test_core_imports_are_core_dependencies_and_nothing_else_is_declared():
    core = _declared(_project()["dependencies"])
    files = [p for p in _py("doctor", "probes") if "doctor/jobs/" not in p.as_posix()]
    used = _imports(files)
    missing = {d: sorted(f)[:3] for d, f in used.items() if d not in core}
    assert not missing, f"imported by the core but not a core dependency: {missing}"
    unused = core - set(used)
    assert not unused, f"declared core dependencies nothing in doctor/ or probes/ imports: {sorted(unused)}"


def test_job_workers_fixtures_tests_and_benches_import_only_declared_packages():
    project = _project()
    core = _declared(project["dependencies"])
    extras = {k: _declared(v) for k, v in project["optional-dependencies"].items()}
    for where, allowed in (
        (_py("doctor/jobs") + _py("fixtures"), core | extras["train"]),
        (_py("tests") + _py("bench"), core | extras["train"] | extras["dev"]),
    ):
        used = _imports(where)
        undeclared = {d: sorted(f)[:3] for d, f in used.items() if d not in allowed}
        assert not undeclared, f"imported but not declared: {undeclared}"


def test_formats_md_documents_every_manifest_table_and_key():
    """README points at docs/formats.md for the manifest: every table and key of the schema in
    doctor/core/manifest.py's docstring is documented there."""
    import doctor.core.manifest

    doc = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")
    assert "## Rollout manifest (`rollout.toml`)" in doc
    example = doctor.core.manifest.__doc__.split("```toml", 1)[1].split("```", 1)[0]
    schema = tomllib.loads(example)
    section = doc.split("## Rollout manifest", 1)[1].split("\n## ", 1)[0]
    documented = tomllib.loads(section.split("```toml", 1)[1].split("```", 1)[0])

    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k != "mix":
                out |= keys(v, prefix + k + ".")
            if isinstance(v, list) and v and isinstance(v[0], dict):
                out |= keys(v[0], prefix + k + ".")
        return out

    assert keys(schema) <= keys(documented), keys(schema) - keys(documented)
