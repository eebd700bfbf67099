"""The query layer stays backend-neutral: nothing under rta/core/queries imports the
embedded engine (its store or kernels), so a second backend is a sibling folder."""

from __future__ import annotations

import ast
from pathlib import Path

QUERIES = Path(__file__).resolve().parent.parent / "rta" / "core" / "queries"
FORBIDDEN = "rta.core.embedded"


def imported_modules(path: Path) -> list[str]:
    """Every module an import statement in `path` names, at any depth (functions and
    `if TYPE_CHECKING:` blocks included)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_queries_do_not_import_the_embedded_engine() -> None:
    modules = sorted(QUERIES.glob("*.py"))
    assert modules, QUERIES
    bad = {f"{path.name}: {name}" for path in modules for name in imported_modules(path)
           if name == FORBIDDEN or name.startswith(FORBIDDEN + ".")}
    assert not bad, sorted(bad)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from rta.core.embedded import counts\n"
                      "    import rta.core.embedded.funnel\n")
    found = imported_modules(sample)
    assert "rta.core.embedded.counts" in found and "rta.core.embedded.funnel" in found


def test_every_core_module_states_its_thread_rule() -> None:
    """#16: queries run in worker threads while the event loop ingests, so each module of
    the engine says which thread may call what ('Thread rule:' or, in the store, 'Threads:')."""
    import ast
    from pathlib import Path

    core = Path(__file__).resolve().parent.parent / "rta" / "core"
    missing = []
    for path in sorted(core.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "Thread rule:" not in doc and "Threads:" not in doc:
            missing.append(str(path.relative_to(core)))
    assert not missing, f"modules without a thread rule: {missing}"


def test_backends_are_siblings() -> None:
    """The ClickHouse backend and the embedded engine import nothing of each other: each
    implements the query layer's Backend protocol on its own."""
    core = QUERIES.parent
    pairs = (("clickhouse", "rta.core.embedded"), ("embedded", "rta.core.clickhouse"))
    bad = {f"{folder}/{path.name}: {name}" for folder, forbidden in pairs
           for path in sorted((core / folder).rglob("*.py"))
           for name in imported_modules(path)
           if name == forbidden or name.startswith(forbidden + ".")}
    assert not bad, sorted(bad)
