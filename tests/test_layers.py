"""The shape of utils/: sub-packages in four layers whose imports point down only, declared as import-linter
contracts in pyproject.toml (layers, the core without torch, no cycle between a package's modules) and checked
here, with a planted break of each seen to fail them. Also held here: each package's docstring names its layer,
at most ``MAX_TOP_MODULES`` modules sit directly in utils/, no module is longer than ``MAX_MODULE_LINES`` and no
function longer than ``MAX_FUNCTION_LINES``, but for the tables and formulas of ``LONG_FUNCTIONS``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

KIT_ROOT = Path(__file__).resolve().parent.parent
UTILS = KIT_ROOT / "utils"
CONTRACTS = tomllib.loads((KIT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
LAYER_ROWS = next(contract for contract in CONTRACTS if contract["id"] == "layers")["layers"]
# the contract's rows, top to bottom, by the layer a package's docstring names
LAYER_NAMES = ("orchestration", "orchestration", "stages", "stages", "primitives", "core")
MAX_TOP_MODULES = 6
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# tables and formulas, read best in one piece
LONG_FUNCTIONS = {
    "imaging.metrics.ciede2000": "the CIEDE2000 formula, term by term as in Sharma et al.",
    "data.demo.draw_cartoon_frame": "the drawing of one frame, shape by shape",
}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's command line on the kit at ``root`` (its pyproject.toml, its utils/)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def kit_copy(tmp_path: Path) -> Path:
    shutil.copytree(UTILS, tmp_path / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(KIT_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def plant(root: Path, module: str, line: str) -> None:
    path = root / "utils" / f"{module.replace('.', '/')}.py"
    path.write_text(path.read_text() + f"\n\ndef planted():\n    {line}\n")


def modules() -> dict[str, Path]:
    """utils' modules by dotted name below utils (``core.config``; ``pipeline``), packages' ``__init__`` included."""
    return {
        ".".join(path.relative_to(UTILS).with_suffix("").parts): path
        for path in sorted(UTILS.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_the_import_contracts_hold(capsys, monkeypatch) -> None:
    from importlinter.cli import lint_imports as lint_imports_here

    monkeypatch.chdir(KIT_ROOT)
    exit_code = lint_imports_here(no_cache=True, no_logo=True)
    printed = capsys.readouterr().out
    assert exit_code == 0, printed
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in printed


@pytest.mark.slow  # import-linter in a process of its own, on a copy of the kit
@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core.errors", "from utils.data import shards", "four layers"),  # core -> stages
        ("imaging.color", "from utils.nets import models", "four layers"),  # two primitives kept apart
        ("train.gan", "from utils.eval import claims", "four layers"),  # two stages kept apart
        ("core.statistics", "import torch", "never imports torch"),  # a lazy import is still one
        ("eval.claims", "from utils.eval import report", "no import cycle"),  # report imports claims
    ],
)
def test_a_planted_break_fails_its_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = kit_copy(tmp_path)
    plant(root, module, line)
    done = lint_imports(root)
    assert done.returncode == 1, done.stdout + done.stderr
    broken_lines = [text for text in done.stdout.replace("\n", " ").split("KEPT") if "BROKEN" in text]
    assert broken in " ".join(broken_lines), done.stdout


def test_every_package_is_one_layer_of_the_contract_and_says_which() -> None:
    rows = {name.strip(): index for index, row in enumerate(LAYER_ROWS) for name in row.split("|")}
    packages = sorted(path.parent.name for path in UTILS.glob("*/__init__.py"))
    tops = sorted(path.stem for path in UTILS.glob("*.py") if path.stem != "__init__")
    missing = [name for name in packages + tops if f"utils.{name}" not in rows]
    assert not missing, f"utils packages or modules missing from the layers contract in pyproject.toml: {missing}"
    for package in packages:
        docstring = ast.get_docstring(ast.parse((UTILS / package / "__init__.py").read_text())) or ""
        layer = LAYER_NAMES[rows[f"utils.{package}"]]
        assert docstring.startswith(f"Layer: {layer}"), f"utils/{package}/__init__.py should start 'Layer: {layer}'"


def test_utils_itself_holds_few_modules() -> None:
    top = [path.name for path in UTILS.glob("*.py")]
    assert len(top) <= MAX_TOP_MODULES, f"modules directly in utils/: {top}"


def test_modules_are_short() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short() -> None:
    long = {
        f"{name}.{node.name}": node.end_lineno - node.lineno + 1
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    unexpected = {key: n for key, n in long.items() if key not in LONG_FUNCTIONS}
    assert not unexpected, f"functions over {MAX_FUNCTION_LINES} lines: {unexpected}"
    stale = sorted(set(LONG_FUNCTIONS) - set(long))
    assert not stale, f"LONG_FUNCTIONS allows functions that are no longer long (or gone): {stale}"


def unformatted_skips(source: str) -> list[int]:
    """Lines of ``source`` that keep ``# fmt: skip`` anywhere but at the end of a module-level table (a constant
    bound to a literal dict, list, tuple or call): everything else is the formatter's."""
    tree = ast.parse(source)
    table_ends = {
        node.end_lineno
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Dict | ast.List | ast.Tuple | ast.Call)
    }
    return [
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if "# fmt: skip" in line and number not in table_ends
    ]


def test_the_formatter_formats_all_but_tables() -> None:
    packed = {name: lines for name, path in modules().items() if (lines := unformatted_skips(path.read_text()))}
    assert not packed, f"# fmt: skip outside a module-level table (name: lines): {packed}"


def test_a_skip_outside_a_table_is_found() -> None:
    table = 'WIDTHS = {"a": 1,  "b": 2}  # fmt: skip\n'
    packed = "def f(x):\n    return (x,\n            x)  # fmt: skip\n"
    assert unformatted_skips(table) == [] and unformatted_skips(table + packed) == [4]


@pytest.mark.slow  # ruff in a process of its own
def test_utils_is_as_the_formatter_leaves_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "utils"], cwd=KIT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
