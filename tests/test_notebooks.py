"""Notebooks in git: no outputs, exactly one `parameters` cell holding the run's parameters, no hold of the run
directory across cells, and imports cells that import only what their notebook uses."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.helpers import KIT_ROOT, run_python

NOTEBOOKS = sorted((KIT_ROOT / "notebooks").glob("*.ipynb"))
# What no imports cell but the figures notebook's may import: what only drawing needs, seconds on a small
# machine (docs/performance.md, "Start-up of each notebook"), so the train notebook (run once per model) and
# the others stay lean.
DRAWING_MODULES = ("matplotlib", "seaborn", "scipy")
# What a notebook's imports cell, alone in a fresh interpreter, must not import: the train notebook (run once per
# model) nothing the evaluation, its statistics or seaborn need; the figures notebook, which reads tables, no torch.
NOT_IMPORTED = {
    "02_train.ipynb": ("seaborn", "scipy", "statsmodels", "utils.eval"),
    "04_figures.ipynb": ("torch",),
}
# What holding the run directory in a cell takes: each library call that writes it holds it for the call alone
HOLDING = {"hold_run_dir", "RunDirWriter", "release", "utils.core.run_dir"}


def imports_cell(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def test_the_stage_notebooks_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    for stage in ("01_prepare_data", "02_train", "03_evaluate", "04_figures", "05_colorize"):
        assert f"{stage}.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterized(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert all(cell.get("id") for cell in nb["cells"]), f"{path.name}: a cell without an id (nbformat 4.5)"
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for cell in code_cells:
        assert not cell.get("outputs"), f"{path.name}: a code cell carries outputs"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell carries an execution count"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    names = {t.id for node in ast.parse("".join(tagged[0]["source"])).body for t in node.targets}
    own = {
        "02_train.ipynb": {"domain", "seed_index"},
        "05_colorize.ipynb": {"model", "seed_index", "input_path", "output_dir", "model_size", "compare", "overwrite"},
    }
    expected = {"profile", "run_dir", "overrides"} | own.get(path.name, set())
    assert names == expected


@pytest.mark.slow
def test_only_the_figures_notebook_imports_drawing_modules() -> None:
    """Every other notebook's imports cell, in one process (one torch import, not four)."""
    cells = [imports_cell(path) for path in NOTEBOOKS if path.name != "04_figures.ipynb"]
    check = "\n".join(cells) + f"\nimport sys\nprint(*(m for m in {DRAWING_MODULES!r} if m in sys.modules))"
    done = run_python("-c", check)
    assert done.returncode == 0, done.stderr
    assert not done.stdout.strip(), f"the imports cells import {done.stdout.strip()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_holds_the_run_directory_for_a_later_cell(path: Path) -> None:
    """A cell that fails in Jupyter leaves nothing held: no cell takes the writer's hold or lets it go."""
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        nodes = list(ast.walk(ast.parse("".join(cell["source"]))))
        names = {node.id for node in nodes if isinstance(node, ast.Name)}
        names |= {node.attr for node in nodes if isinstance(node, ast.Attribute)}
        names |= {alias.name for node in nodes if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
        names |= {node.module for node in nodes if isinstance(node, ast.ImportFrom)}
        assert not names & HOLDING, f"{path.name}, cell {index}: {sorted(names & HOLDING)}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "modules"), NOT_IMPORTED.items(), ids=list(NOT_IMPORTED))
def test_an_imports_cell_imports_only_what_its_notebook_uses(name: str, modules: tuple[str, ...]) -> None:
    check = (
        imports_cell(KIT_ROOT / "notebooks" / name)
        + f"\nimport sys\nprint(*(m for m in {modules!r} if m in sys.modules))"
    )
    done = run_python("-c", check)
    assert done.returncode == 0, done.stderr
    assert not done.stdout.strip(), f"{name}'s imports cell imports {done.stdout.strip()}"
