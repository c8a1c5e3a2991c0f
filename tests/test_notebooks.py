"""Notebooks in git: no outputs, exactly one `parameters` cell holding the run's parameters."""

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
    cells = []
    for path in NOTEBOOKS:
        if path.name != "04_figures.ipynb":
            nb = json.loads(path.read_text())
            cells.append("".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"]))
    check = "\n".join(cells) + f"\nimport sys\nprint(*(m for m in {DRAWING_MODULES!r} if m in sys.modules))"
    done = run_python("-c", check)
    assert done.returncode == 0, done.stderr
    assert not done.stdout.strip(), f"the imports cells import {done.stdout.strip()}"
