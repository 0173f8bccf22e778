"""The floors hold (docs/ARCHITECTURE.md): import contracts, no import cycle between files, one check per rule."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp
import pytest

from probes import FAMILIES, rule_registry

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    """pyproject's [tool.importlinter] contracts: the floors and the independence of probe families."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        group.append(m)
                        if m == node:
                            break
                    if len(group) > 1:
                        out.append(sorted(group))
    return out


def test_no_import_cycle_between_files():
    """Every import counts, also one inside a function; only `if TYPE_CHECKING:` imports are left out."""
    graph = grimp.build_graph("doctor", "probes", exclude_type_checking_imports=True, cache_dir=None)
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def _all_checks():
    """(rule id, family, where) for every registered check, after importing every check module."""
    import importlib

    import doctor.engine  # noqa: F401  (registers the engine's DOC checks)
    from doctor.core.checks import DOC_CHECKS

    sets = [DOC_CHECKS]
    for name in FAMILIES:
        family = importlib.import_module(name)
        for probe in family.PROBES:
            getattr(probe, "impl", probe)  # a LazyProbe imports its implementation (and its check modules)
        sets.append(family.CHECKS)
    return [(c.rule.id, s.family, c.where) for s in sets for c in s]


def test_every_rule_has_exactly_one_registered_check():
    checks = _all_checks()
    per_rule = Counter(rule_id for rule_id, _, _ in checks)
    missing = sorted(r.id for r in rule_registry() if per_rule[r.id] == 0)
    twice = sorted(r for r, n in per_rule.items() if n > 1)
    unknown = sorted(r for r in per_rule if r not in rule_registry())
    assert (missing, twice, unknown) == ([], [], [])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_registers_a_check_for_each_of_its_rules(family):
    import importlib

    mod = importlib.import_module(family)
    for probe in mod.PROBES:
        getattr(probe, "impl", probe)
    assert mod.CHECKS.missing() == []
    assert {r.id for r in mod.RULES} <= set(mod.CHECKS.rules)


def test_no_family_reaches_the_catalogue_of_all_families():
    """`probes` itself (probes/__init__.py: FAMILIES, classifiers(), load_probes()) sits above the families:
    only the engine and the application may import it, never a family, the probe kit or the core (the
    import-linter layers name the families, not this package, so this test keeps it in place)."""
    graph = grimp.build_graph("doctor", "probes", exclude_type_checking_imports=True, cache_dir=None)
    importers = graph.find_modules_that_directly_import("probes")
    assert sorted(m for m in importers if m.startswith(("probes.", "doctor.core"))) == []


def test_architecture_doc_names_every_module():
    """docs/ARCHITECTURE.md is the map a newcomer reads first: every module of doctor/ and probes/ is on it."""
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    unnamed = [
        p.relative_to(ROOT).as_posix()
        for base in ("doctor", "probes")
        for p in sorted((ROOT / base).rglob("*.py"))
        if p.name != "__init__.py" and p.relative_to(ROOT).as_posix() not in doc
    ]
    assert unnamed == []
