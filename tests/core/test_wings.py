"""The wings of core/ as its imports show them (every import statement, those inside functions included):

- core.rundir, the run folder, imports nothing else of core: everything points into it;
- core.data, the pictures, imports only itself and the run folder;
- core.training never imports the analysis wing or a conductor (jobs, sweep, bench, present, train);
- core.analysis takes from training only the model registry and the inference path;
- no two modules import each other in a circle at import time (module-level imports, TYPE_CHECKING left out).

Each failure names the importing module, its line and what it imports.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO

CORE = REPO / "core"

CONDUCTORS = ("core.jobs", "core.sweep", "core.bench", "core.train")
# What the analysis wing may use of training: the registry (Grad-CAM's layer, the classifier's features) and
# the one inference path (Predictor, infer_features, class_accuracy), so an analysis predicts as the run did.
ANALYSIS_MAY_USE_OF_TRAINING = ("core.training.models", "core.training.inference")


@dataclass(frozen=True)
class Import:
    importer: str  # the module holding the statement
    target: str  # the module imported (for `from pkg import name`, pkg.name when that is a module)
    line: int
    at_import_time: bool  # module level and not under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.target}"


def module_name(path: Path, root: Path = CORE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the importer's package, up level - 1
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    found = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    return found if len(found) == len(node.names) else [base, *found]


def imports_of(source: str, importer: str, is_package: bool = False, modules: set[str] = frozenset()) -> list[Import]:
    """Every import statement of `source`, wherever it stands, as Imports of core modules only."""
    found: list[Import] = []

    def visit(node: ast.AST, at_import_time: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend(Import(importer, target, node.lineno, at_import_time)
                         for target in _targets(node, importer, is_package, modules)
                         if target == "core" or target.startswith("core."))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            at_import_time = False  # runs when called, not when the module is imported
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import_time)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time)

    visit(ast.parse(source), True)
    return found


def all_imports() -> list[Import]:
    paths = sorted(CORE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return [imp for path in paths
            for imp in imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py",
                                  modules)]


def within(module: str, *wings: str) -> bool:
    return any(module == wing or module.startswith(wing + ".") for wing in wings)


IMPORTS = all_imports()


def offending(rule) -> list[str]:
    return [str(imp) for imp in IMPORTS if rule(imp)]


# ---------------------------------------------------------------------------------------------
# The reader itself: a rule over imports it does not see could not fail
# ---------------------------------------------------------------------------------------------

def test_the_reader_sees_imports_inside_functions_and_under_type_checking_and_resolves_from_imports():
    source = ("from typing import TYPE_CHECKING\nimport core.rundir.layout\nfrom core.training import models\n"
              "if TYPE_CHECKING:\n    from core.rundir.config import TrainConfig\n"
              "def later():\n    from core.analysis import features\n    import numpy\n")
    found = imports_of(source, "core.x", modules={"core.training.models"})
    assert [(imp.target, imp.line, imp.at_import_time) for imp in found] == [
        ("core.rundir.layout", 2, True), ("core.training.models", 3, True), ("core.rundir.config", 5, False),
        ("core.analysis", 7, False)]
    assert str(found[3]) == "core.x (line 7) imports core.analysis"


def test_every_module_of_core_is_read():
    importers = {imp.importer for imp in IMPORTS}
    assert {"core.training.engine", "core.analysis.features", "core.rundir.catalog", "core.data.loader"} <= importers


# ---------------------------------------------------------------------------------------------
# The wings
# ---------------------------------------------------------------------------------------------

RULES = {
    "the run folder imports nothing else of core":
        lambda imp: within(imp.importer, "core.rundir") and not within(imp.target, "core.rundir"),
    "the pictures import only themselves and the run folder":
        lambda imp: within(imp.importer, "core.data") and not within(imp.target, "core.data", "core.rundir"),
    "training imports neither the analysis wing nor a conductor":
        lambda imp: within(imp.importer, "core.training") and within(imp.target, "core.analysis", *CONDUCTORS),
    "analysis takes from training only the model registry and the inference path":
        lambda imp: within(imp.importer, "core.analysis") and within(imp.target, "core.training")
        and not within(imp.target, *ANALYSIS_MAY_USE_OF_TRAINING),
    "analysis starts no jobs, sweeps or runs of the command line":
        lambda imp: within(imp.importer, "core.analysis") and within(imp.target, *CONDUCTORS),
}


@pytest.mark.parametrize("rule", RULES)
def test_wing(rule):
    bad = offending(RULES[rule])
    assert not bad, f"{rule}, but " + "; ".join(bad)


def test_no_import_circle_at_import_time():
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.at_import_time and imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    circles = [[str(imp) for imp in IMPORTS if imp.at_import_time and imp.importer in circle and imp.target in circle]
               for circle in _circles(graph)]
    assert not circles, "modules import each other in a circle at import time: " + " | ".join(map("; ".join, circles))


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_circle_finder_finds_a_planted_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
