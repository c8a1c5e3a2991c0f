"""utils/ in four layers whose imports point down only: read from the source with ast, nothing imported.

Every import counts, at module level or inside a function (a lazy import is still a dependency), in each of its
forms: ``import utils.x``, ``from utils import x``, ``from utils.x import y``. The layer of each module comes from
``LAYERS`` alone; a module missing from it fails. Also held here: a base module never imports torch, no module
is longer than ``MAX_MODULE_LINES`` and no function longer than ``MAX_FUNCTION_LINES``, but for the tables and
formulas of ``LONG_FUNCTIONS``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parent.parent / "utils"

# the one table: layer -> its modules; a module may import its own layer's (without a cycle) and the layers below
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("__init__", "errors", "run_dir", "processes", "domains", "grouping", "config", "statistics"),
    "primitives": ("environment", "color", "metrics", "images", "models", "checkpoints", "scoring", "distributed"),
    "stages": (
        "thumbnail_check", "near_duplicates", "grouped_split", "shards", "sources", "demo", "decoding", "data", "batches",
        "gan", "launch", "train", "evaluate", "claims", "plots", "group_pictures", "report_findings", "report",
        "step_timing",
    ),
    "orchestration": (
        "kernel_manager", "notebook_step", "scheduler", "plan", "pipeline", "kaggle_client", "kaggle", "kaggle_kernel",
        "colorize",
    ),
}  # fmt: skip
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
NO_TORCH = ("base",)
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# tables and formulas, read best in one piece
LONG_FUNCTIONS = {
    "config.validate": "the table of every parameter's checks",
    "metrics.ciede2000": "the CIEDE2000 formula, term by term as in Sharma et al.",
    "demo.draw_cartoon_frame": "the drawing of one frame, shape by shape",
}


def module_sources() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), filename=str(path)) for path in sorted(UTILS.glob("*.py"))}


def kit_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(utils module imported, line) for every import anywhere in ``tree``, lazy ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "utils" and len(parts) > 1:
                    found.append((parts[1], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "utils":
                continue
            if len(parts) > 1:
                found.append((parts[1], node.lineno))
            else:  # from utils import x, y
                found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:  # from . import x, from .x import y
            names = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
            found.extend((name, node.lineno) for name in names)
    return found


def imports_torch(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lines += [node.lineno for alias in node.names if alias.name.split(".")[0] == "torch"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "torch":
            lines.append(node.lineno)
    return lines


def import_graph(sources: dict[str, ast.Module]) -> dict[str, set[str]]:
    return {name: {imported for imported, _ in kit_imports(tree) if imported != name} for name, tree in sources.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), as a path that ends where it starts."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_within(graph, set(group)) for group in groups]


def cycle_within(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A path through ``group`` (strongly connected) from its first module back to it."""
    start = min(group)
    paths = [[start]]
    while paths:  # breadth first: the shortest way back
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & group):
            if nxt == start:
                return [*path, start]
            if nxt not in path:
                paths.append([*path, nxt])
    return sorted(group)


SOURCES = module_sources()


def test_every_utils_module_has_one_layer() -> None:
    listed = [module for modules in LAYERS.values() for module in modules]
    assert len(listed) == len(set(listed)), "a module is listed in two layers"
    missing = sorted(set(SOURCES) - set(listed))
    assert not missing, f"utils modules missing from LAYERS in tests/test_layers.py: {missing}"
    gone = sorted(set(listed) - set(SOURCES))
    assert not gone, f"LAYERS lists modules that utils/ no longer has: {gone}"


def test_imports_point_down_only() -> None:
    upward = [
        f"utils/{name}.py:{line} ({LAYER_OF[name]}) imports utils.{imported} ({LAYER_OF.get(imported, 'no layer')})"
        for name, tree in SOURCES.items()
        for imported, line in kit_imports(tree)
        if name in RANK and RANK.get(imported, len(LAYERS)) > RANK[name]
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(SOURCES))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_base_modules_never_import_torch() -> None:
    offenders = [
        f"utils/{name}.py:{line}"
        for name, tree in SOURCES.items()
        if LAYER_OF.get(name) in NO_TORCH
        for line in imports_torch(tree)
    ]
    assert not offenders, "base modules importing torch (at module level or in a function):\n" + "\n".join(offenders)


def test_modules_are_short() -> None:
    lengths = {name: len((UTILS / f"{name}.py").read_text().splitlines()) for name in SOURCES}
    long = {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short() -> None:
    long = {
        f"{name}.{node.name}": node.end_lineno - node.lineno + 1
        for name, tree in SOURCES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    unexpected = {key: n for key, n in long.items() if key not in LONG_FUNCTIONS}
    assert not unexpected, f"functions over {MAX_FUNCTION_LINES} lines: {unexpected}"
    stale = sorted(set(LONG_FUNCTIONS) - set(long))
    assert not stale, f"LONG_FUNCTIONS allows functions that are no longer long (or gone): {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import utils.color", ["color"]),
        ("import utils.color as c", ["color"]),
        ("from utils import color, metrics", ["color", "metrics"]),
        ("from utils.color import rgb_to_lab", ["color"]),
        ("from . import color", ["color"]),
        ("def f():\n    from utils.train import train\n", ["train"]),
        ("class A:\n    def f(self):\n        import utils.pipeline\n", ["pipeline"]),
        ("import torch\nfrom utilsx import y\nimport utils\n", []),
    ],
)
def test_every_form_of_import_is_seen(source: str, expected: list[str]) -> None:
    assert [name for name, _ in kit_imports(ast.parse(source))] == expected


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_a_lazy_torch_import_is_seen() -> None:
    tree = ast.parse("def f():\n    import torch.nn\n\ndef g():\n    from torch import nn\n")
    assert imports_torch(tree) == [2, 5]
