"""The layers, read from the imports of every module of apex_mcp (those inside functions and
TYPE_CHECKING blocks too): the contract (apex) below the engine, the engine below the MCP
server, config.py beside them as plain settings."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "apex_mcp.apex.gen"  # scripts/gen_proto.py writes it: not ours to layer


class Import(NamedTuple):
    importer: str  # the importing module, e.g. apex_mcp.server.app
    path: str  # its file, relative to the root
    line: int
    imported: str  # the module it imports, relative imports resolved


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(root: Path) -> Iterator[Import]:
    files = sorted((root / "apex_mcp").rglob("*.py"))
    modules = {module_name(root, path) for path in files}
    for path in files:
        importer = module_name(root, path)
        if in_package(importer, GENERATED):
            continue
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(importer, where, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    # `from ..engine import miners` imports the module engine.miners
                    submodule = f"{base}.{alias.name}"
                    yield Import(
                        importer, where, node.lineno, submodule if submodule in modules else base
                    )


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def rule_broken(importer: str, imported: str) -> str | None:
    """The layering rule that ``importer`` importing ``imported`` breaks, if any."""
    engine, server, config = "apex_mcp.engine", "apex_mcp.server", "apex_mcp.config"
    if in_package(importer, "apex_mcp.apex") and (
        in_package(imported, engine) or in_package(imported, server)
    ):
        return "apex_mcp/apex (the contract) imports neither apex_mcp.engine nor apex_mcp.server"
    if in_package(importer, engine) and in_package(imported, server):
        return "apex_mcp/engine imports nothing from apex_mcp.server"
    if in_package(importer, engine) and imported == config:
        return "apex_mcp/engine takes values, not Settings: it imports nothing from config.py"
    if importer == config and (in_package(imported, engine) or in_package(imported, server)):
        return "config.py imports no engine or server module"
    if in_package(importer, server) and imported.startswith(engine + "."):
        return (
            "apex_mcp/server imports the engine only through its package "
            "(from apex_mcp.engine import X), never apex_mcp.engine.<module>"
        )
    if importer in (f"{server}.resources", f"{server}.prompts") and in_package(
        imported, f"{server}.tools"
    ):
        return "resources.py and prompts.py import nothing from the tool modules"
    return None


def violations(root: Path) -> list[str]:
    found: list[str] = []
    for each in read_imports(root):
        rule = rule_broken(each.importer, each.imported)
        line = f"{each.path}:{each.line} imports {each.imported}: {rule}"
        if rule is not None and line not in found:  # one line for `from x import a, b`
            found.append(line)
    return found


def test_the_imports_follow_the_layers() -> None:
    broken = violations(ROOT)
    assert not broken, "layering rules broken:\n" + "\n".join(broken)


def test_each_rule_is_caught_wherever_the_import_is_written(tmp_path: Path) -> None:
    files = {
        "apex_mcp/__init__.py": "",
        "apex_mcp/config.py": "def f():\n    from .engine import LocalApex\n",
        "apex_mcp/apex/__init__.py": "",
        "apex_mcp/apex/gen/__init__.py": "from apex_mcp.server import app\n",  # generated
        "apex_mcp/apex/client.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from ..server.app import build_server\n"
        ),
        "apex_mcp/engine/__init__.py": "from .local import LocalApex\n",  # its own modules
        "apex_mcp/engine/local.py": "import apex_mcp.server.state\nfrom .. import config\n",
        "apex_mcp/engine/miners.py": "",
        "apex_mcp/server/__init__.py": "",
        "apex_mcp/server/app.py": (
            "from ..engine import LocalApex\n"  # the package face: allowed
            "from ..engine import miners\n"
        ),
        "apex_mcp/server/state.py": (
            "class C:\n    def f(self):\n        import apex_mcp.engine.local\n"
        ),
        "apex_mcp/server/tools/__init__.py": "",
        "apex_mcp/server/tools/history.py": "",
        "apex_mcp/server/resources.py": "from .tools import history\n",
        "apex_mcp/server/prompts.py": "from apex_mcp.server.tools.history import x\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)

    found = violations(tmp_path)

    assert [line.split(": ")[0] for line in found] == [
        "apex_mcp/apex/client.py:3 imports apex_mcp.server.app",
        "apex_mcp/config.py:2 imports apex_mcp.engine",
        "apex_mcp/engine/local.py:1 imports apex_mcp.server.state",
        "apex_mcp/engine/local.py:2 imports apex_mcp.config",
        "apex_mcp/server/app.py:2 imports apex_mcp.engine.miners",
        "apex_mcp/server/prompts.py:1 imports apex_mcp.server.tools.history",
        "apex_mcp/server/resources.py:1 imports apex_mcp.server.tools.history",
        "apex_mcp/server/state.py:3 imports apex_mcp.engine.local",
    ]
    assert "config.py imports no engine or server module" in found[1]
    assert "only through its package" in found[4]
