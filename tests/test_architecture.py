"""The shape of the portal's imports: a room's pages never import another room's pages.

Pages (``views`` modules) sit on top: what two rooms share lives in their services or in a small
module of its own (``portal/connections/lookup.py`` loads the connection every room's pages are
about), and a room that must act on another's request registers a function for it (the OAuth
callback's completers, ``portal/connections/services.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PORTAL = Path(__file__).resolve().parent.parent / "portal"


def _module(path: Path) -> str:
    parts = path.relative_to(PORTAL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Return (line, module) for every portal module ``path`` imports, relative imports resolved."""
    module = _module(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found += [(node.lineno, target)] + [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("portal.")]


def test_no_page_module_imports_another_rooms_pages():
    views = {_module(path) for path in PORTAL.rglob("views.py")}
    crossing = [
        f"{path.relative_to(PORTAL.parent)}:{line} imports {name}"
        for path in sorted(PORTAL.rglob("views.py"))
        for line, name in _imports(path)
        if name in views and name != _module(path)
    ]
    assert len(views) > 10  # the walk found the rooms' pages
    assert not crossing, crossing
