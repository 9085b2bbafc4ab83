"""Every ``from <our package> import name`` in the repository resolves, including imports inside functions
(ruff sees undefined names, not names a module no longer has; a moved private helper would fail only when
the function runs)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("prefrl", "envs", "agents", "benchmarks", "tools")


def _imports():
    for path in sorted(ROOT.glob("[!.]*/**/*.py")):
        if path.relative_to(ROOT).parts[0] not in (*OURS, "tests"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in OURS:
                yield path.relative_to(ROOT), node.lineno, node.module, [a.name for a in node.names if a.name != "*"]


def test_every_import_of_our_modules_resolves():
    missing = []
    for path, line, module, names in _imports():
        mod = importlib.import_module(module)
        for name in names:
            if hasattr(mod, name):
                continue
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{path}:{line}: from {module} import {name}")
    assert not missing, "\n".join(missing)


def test_the_check_sees_imports_inside_functions():
    found = {(str(p), m) for p, _, m, names in _imports() if "_open_ro" in names}
    assert (str(Path("prefrl/__main__.py")), "prefrl.export_rows") in found
