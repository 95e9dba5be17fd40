"""One door, checked on the source: graph/ reaches partner data only with the caller's access.

Every async function of ``db.queries`` and ``db.ingest`` reads or writes the database. A call to
one from ``graph/`` (resolvers, types, loaders, the export, the CLI) passes the caller's access:

- ``scope=`` — a ``db.scope.Scope``, which only ``graph.auth`` can issue (tested below), or
- ``partner_id=<...scope>.partner_id`` — the partner of such a scope, for partner-wide kinds.

Anything else is named in the failure, unless ``ALLOWED`` lists that exact call site (the
function, the file and the ``def`` it is in) with the reason it needs no access decision.
A new resolver that calls a query function without access fails here and names itself.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import NamedTuple

import db.ingest
import db.queries

ROOT = Path(__file__).resolve().parents[1]
GRAPH = ROOT / "graph"


class Call(NamedTuple):
    function: str  # db.queries.tags.update_tag
    path: str  # graph/resolvers/tags.py
    within: str  # the enclosing def, "<module>" at top level
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.within}(): {self.function}"


def data_functions() -> dict[str, inspect.Signature]:
    """Every public async function of db.queries and db.ingest, by qualified name."""
    found: dict[str, inspect.Signature] = {}
    for package in (db.queries, db.ingest):
        names = [package.__name__]
        names += [i.name for i in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
        for module in map(importlib.import_module, names):
            for name, value in vars(module).items():
                if name.startswith("_") or not inspect.iscoroutinefunction(value):
                    continue
                found[f"{value.__module__}.{value.__qualname__}"] = inspect.signature(value)
                found.setdefault(f"{module.__name__}.{name}", inspect.signature(value))
    return found


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name, for ``import a.b as c`` and ``from a import b as c``."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _with_access(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "scope":
            return True
        value = keyword.value
        if (
            keyword.arg == "partner_id"
            and isinstance(value, ast.Attribute)
            and value.attr == "partner_id"
            and isinstance(value.value, ast.Name)
            and value.value.id.endswith("scope")
        ):
            return True
    return False


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, names: dict[str, str], functions: set[str]) -> None:
        self.path, self.names, self.functions = path, names, functions
        self.within = ["<module>"]
        self.calls: list[Call] = []

    def _def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.within.append(node.name)
        self.generic_visit(node)
        self.within.pop()

    visit_FunctionDef = _def
    visit_AsyncFunctionDef = _def

    def visit_Call(self, node: ast.Call) -> None:
        target = _dotted(node.func, self.names)
        if target in self.functions:
            if not _with_access(node):
                self.calls.append(Call(target, self.path, self.within[-1], node.lineno))
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self.generic_visit(node)

    def _reference(self, node: ast.Name | ast.Attribute) -> None:
        # A query function handed over uncalled (``fetch=q.tags_by_ids``) would dodge the
        # check at its call: it counts as a call without access.
        target = _dotted(node, self.names)
        if target in self.functions and isinstance(node.ctx, ast.Load):
            self.calls.append(Call(target, self.path, self.within[-1], node.lineno))
            return
        self.generic_visit(node)

    visit_Name = _reference
    visit_Attribute = _reference


def graph_sources() -> list[Path]:
    return sorted(GRAPH.rglob("*.py"))


def unguarded_calls() -> list[Call]:
    """Calls from graph/ to a data function without the caller's access, in source order."""
    functions = set(data_functions())
    calls: list[Call] = []
    for path in graph_sources():
        tree = ast.parse(path.read_text(), str(path))
        finder = _Finder(str(path.relative_to(ROOT)), _imports(tree), functions)
        finder.visit(tree)
        calls.extend(finder.calls)
    return calls
