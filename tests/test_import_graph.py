"""The package graph: a DAG with the arrows README "Packages and their imports" names.

Every import counts, at module level or inside a function, and so does a module named in a string
(the CLIs load their subcommands with ``importlib``). Any arrow outside ``ALLOWED`` fails.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adpush_core", "beam_pipelines", "tfrs_models", "serving", "abtest", "adpush")
# package -> the first-party packages it may import (DESIGN.md "Layout"; README).
ALLOWED = {
    "adpush_core": set(),
    "beam_pipelines": {"adpush_core"},
    "tfrs_models": {"adpush_core"},
    "serving": {"adpush_core"},
    "abtest": {"adpush_core", "serving", "beam_pipelines"},
    "adpush": {"adpush_core", "beam_pipelines", "tfrs_models", "serving", "abtest"},
}
_MODULE_NAME = re.compile(r"(%s)(\.[A-Za-z_]\w*)+" % "|".join(PACKAGES))


def _sources(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path):
    """(line, dotted module) for every import and every module-name string in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; name the package")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _MODULE_NAME.fullmatch(node.value) and _is_module(node.value)):
            yield node.lineno, node.value


def _is_module(dotted: str) -> bool:
    """A string names a module when the file exists (not e.g. a metrics namespace)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def package_edges():
    """{(file relative to the repo, imported package): [lines]} across the first-party packages."""
    edges: dict[tuple[str, str], list[int]] = {}
    for package in PACKAGES:
        for path in _sources(package):
            for line, module in _imported_modules(path):
                target = module.split(".")[0]
                if target in PACKAGES and target != package:
                    edges.setdefault((str(path.relative_to(ROOT)), target), []).append(line)
    return edges


def _cycles(graph: dict[str, set[str]]):
    """Every package that reaches itself."""
    found = []
    for start in graph:
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                found.append(start)
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
    return found


def test_every_import_follows_an_allowed_arrow():
    edges = package_edges()
    wrong = {(f, t): lines for (f, t), lines in edges.items()
             if t not in ALLOWED[Path(f).parts[0]]}
    assert not wrong, "imports against the package graph: " + "; ".join(
        f"{f}:{lines} -> {t}" for (f, t), lines in sorted(wrong.items()))


def test_the_package_graph_has_no_cycle_and_models_import_neither_serving_nor_abtest():
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for (f, t) in package_edges():
        graph[Path(f).parts[0]].add(t)
    assert not _cycles(graph), f"package cycle through {_cycles(graph)}: {graph}"
    assert not graph["tfrs_models"] & {"serving", "abtest"}, graph["tfrs_models"]


def test_the_cycle_check_sees_function_local_and_string_imports(tmp_path, monkeypatch):
    """The walk must not miss the imports that hid the old cycles."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from serving.export import x\n"
                      "TABLE = {'train': 'tfrs_models.cli', 'counter': 'adpush.build_data'}\n")
    assert [m for _, m in _imported_modules(source)] == ["serving.export", "tfrs_models.cli"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == ["a", "b"]


def test_tensorflow_is_imported_only_through_adpush_core():
    """One way to import TensorFlow: ``adpush_core.tfenv.import_tensorflow()`` selects Keras 2
    first. Proto and SavedModel-loader submodules (``from tensorflow.core... import x_pb2``) may be
    imported where a package already set the environment up (every package ``__init__`` does)."""
    offenders = []
    for package in PACKAGES:
        init = (ROOT / package / "__init__.py").read_text()
        if package != "adpush_core" and "adpush_core" not in init:
            offenders.append(f"{package}/__init__.py does not import adpush_core")
        for path in _sources(package):
            if path == ROOT / "adpush_core" / "tfenv.py":
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for name in names:
                    top = name.split(".")[0]
                    bare = isinstance(node, ast.Import) or name == "tensorflow"
                    if top in ("tf_keras", "keras") or (top == "tensorflow" and bare):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offenders, offenders
