"""The package's shape: imports flow one way between the domain packages, with no circles.

`core` imports nothing else of ours; `audio`, `agent`, `hardware` and `fleet` import `core` (and
not each other, nor `service`); only `service`, `devtools` and the command line see everything.
Parsed from the source (every import, also those inside functions), so a lazy import that would
make a circle at run time fails here too.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edge_agent"

# domain -> the domains it may import (besides itself and the package root: errors, constants)
ALLOWED = {
    "core": set(),
    "audio": {"core"},
    "agent": {"core"},
    "hardware": {"core"},
    "fleet": {"core"},
    "service": {"core", "audio", "agent", "hardware", "fleet"},
    "devtools": {"core", "audio", "agent", "hardware", "fleet", "service"},
}
ROOT_MODULES = {"__init__", "__main__", "errors", "cli"}


def _domain(module: str) -> str:
    """'edge_agent.audio.gate' -> 'audio'; 'edge_agent.errors' -> 'errors'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def _parse(path: Path) -> ast.Module:
    """`ast.parse` with the garbage collector held off: on CPython 3.11.7 (CI's Python) a
    coroutine an earlier test left behind, finalised by a collection in the middle of the parse,
    made it raise "SystemError: AST constructor recursion depth mismatch" (the parser's depth
    counter does not expect code to run inside it)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if was_enabled:
            gc.enable()


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge_agent"):
            if node.module == "edge_agent":  # a submodule, or a name of the package root
                found.update(f"edge_agent.{a.name}" if _is_module(a.name) else "edge_agent" for a in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("edge_agent"))
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def test_every_module_lives_in_a_domain_package() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            assert rel.stem in ROOT_MODULES, f"{rel}: put it in one of {sorted(ALLOWED)}"
        else:
            assert rel.parts[0] in ALLOWED, f"{rel}: unknown domain package {rel.parts[0]}"


def test_imports_flow_one_way() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            continue  # the root modules: errors imports nothing, cli sees everything
        here = rel.parts[0]
        for target in _imports(path):
            there = _domain(target)
            if there in ROOT_MODULES - {"cli"} or there == here:
                continue
            if there not in ALLOWED[here]:
                wrong.append(f"{rel} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_circles_between_modules() -> None:
    graph = {_module_name(p): {t for t in _imports(p)} for p in PACKAGE.rglob("*.py")}
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == "edge_agent":
                continue
            if seen.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, nxt]))
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])


def test_only_the_command_line_and_devtools_construct_the_kiosk() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("cli.py", "service", "devtools"):
            continue
        assert "edge_agent.service.daemon" not in _imports(path), f"{rel} reaches into Kiosk"


def test_the_readme_module_table_names_every_module() -> None:
    """README's "How it is built" table is a newcomer's map: every module is on it, and nothing that is gone."""
    import re

    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme[readme.index("| package / module | job |") :]
    table = table[: table.index("\n## ")]
    named = {cell for row in table.splitlines() for cell in re.findall(r"`([\w/]+\.py)`", row.split(" | ")[0])}
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert not modules - named, f"modules missing from README's module table: {sorted(modules - named)}"
    assert not named - modules, f"README's module table names modules that do not exist: {sorted(named - modules)}"


MAX_MODULE_LINES = 400
"""One job a module: past ~400 lines a module has grown a second one (paho's 5 000-line client)."""


def test_no_module_grows_past_its_limit() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (move a part with a job of its own out): {long}"
