"""requirements.txt is what a run needs, and all the Kaggle kernel installs; requirements-dev.txt adds the test and
lint tools to it, and ``make setup`` installs that, again whenever either file changes."""

from __future__ import annotations

import ast
import io
import re
import tarfile
from pathlib import Path

from utils.kaggle import commands as kit_kaggle

KIT_ROOT = Path(__file__).resolve().parent.parent
RUN = KIT_ROOT / "requirements.txt"
DEV = KIT_ROOT / "requirements-dev.txt"


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's lines without comments and blank lines, as pip reads them."""
    lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_dev_tools_are_in_requirements_dev_only() -> None:
    dev = requirement_lines(DEV)
    assert dev[0] == "-r requirements.txt"  # everything a run needs, then the tools
    tools = {name_of(line) for line in dev[1:]}
    assert {"pytest", "pytest-xdist", "ruff", "import-linter"} <= tools
    assert not tools & {name_of(line) for line in requirement_lines(RUN)}
    assert all(re.search(r"[<>]=", line) for line in dev[1:]), "ranges, not pins"
    assert not any(line.startswith("-") for line in requirement_lines(RUN))  # a list the kernel can pip install


def test_torch_is_a_range_kaggles_own_can_meet() -> None:
    torch = [line for line in requirement_lines(RUN) if name_of(line) in ("torch", "torchvision")]
    assert len(torch) == 2 and not any("==" in line or "<" in line for line in torch), torch


def test_the_kernel_installs_requirements_txt_as_it_is() -> None:
    notebook = kit_kaggle.bundled_notebook("demo", {}, "tester/cross-domain-colorization")
    unpack = next(cell.source for cell in notebook.cells if "KIT_ARCHIVE" in cell.source)
    assigned = {
        target.id: node.value
        for node in ast.parse(unpack).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert ast.literal_eval(assigned["REQUIREMENTS"]) == requirement_lines(RUN)
    with tarfile.open(fileobj=io.BytesIO(kit_kaggle.kit_archive()), mode="r:gz") as archive:
        names = set(archive.getnames())
        assert archive.extractfile("requirements.txt").read() == RUN.read_bytes()
    assert DEV.name not in names


def test_make_setup_installs_both_and_again_when_either_changes() -> None:
    makefile = (KIT_ROOT / "Makefile").read_text()
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert stamp_rule is not None
    assert set(stamp_rule[1].split()) == {RUN.name, DEV.name}
    installs = [line for line in stamp_rule[2].splitlines() if "pip install" in line and " -r " in line]
    assert len(installs) == 1 and installs[0].endswith(f"-r {DEV.name}"), installs
