"""run.json has one reader, ``run_dir.read_run_record``: a damaged file is the same named error whoever reads it, a
missing one the empty record, and no other module of utils/ or benchmarks/ opens it itself."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from utils.core import config
from utils.core.errors import UnreadableFileError
from utils.core.run_dir import RUN_RECORD, RUN_RECORD_REMEDY, locked_run_record, read_run_record
from utils.kaggle.kernel import run_is_partial
from utils.train.time_budget import TimeBudget

KIT_ROOT = Path(__file__).resolve().parent.parent
READER = "utils/core/run_dir.py"  # the module of the one reader (and of locked_run_record, which uses it)
# what reads a file: path.read_text(), open(path), json.load(s), read_json_file(path), pd.read_json(...)
READS = {"read_text", "read_bytes", "open", "load", "loads", "read_json", "read_json_file"}
FUNCTIONS = ast.FunctionDef | ast.AsyncFunctionDef
DAMAGES = {
    "not JSON": ('{"profile": "demo", "stages": {"prepare": ', "damaged, not JSON"),
    "not an object": ('["demo"]', "damaged, not a JSON object"),
}


def time_budget(run_dir: Path) -> object:
    return TimeBudget.for_run(dataclasses.replace(config.RunParams(), time_limit_hours=1.0), run_dir)


def settled(run_dir: Path) -> object:
    return config.settle_pretrained("demo", run_dir, {"pretrained": config.PRETRAINED_IF_CACHED})


def changed(run_dir: Path) -> None:
    with locked_run_record(run_dir) as record:
        record["seen"] = True


CALLERS = {"kaggle kernel": run_is_partial, "time budget": time_budget, "pretrained": settled, "writer": changed}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("caller", CALLERS)
def test_a_damaged_run_json_is_the_same_named_error_from_every_caller(tmp_path: Path, caller: str, damage: str):
    record = tmp_path / RUN_RECORD
    text, what = DAMAGES[damage]
    record.write_text(text)
    with pytest.raises(UnreadableFileError) as caught:
        CALLERS[caller](tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{record}: {what}") and message.endswith(f"; {RUN_RECORD_REMEDY}"), message
    assert record.read_text() == text  # kept as it was, for the user to restore or move aside


def test_a_missing_run_json_is_the_empty_record(tmp_path: Path) -> None:
    assert read_run_record(tmp_path) == {} and read_run_record(tmp_path / "no such run") == {}
    assert run_is_partial(tmp_path) is False
    changed(tmp_path)
    assert read_run_record(tmp_path) == {"seen": True}


# --- no module reads run.json but the reader -----------------------------------------------------------------


def body_without_docstring(node: ast.AST) -> list[ast.AST]:
    body = list(getattr(node, "body", []))
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring may name run.json
    return body


def names_record(node: ast.AST, record_names: set[str]) -> bool:
    """Whether ``node`` names run.json: a string holding it (an f-string's parts too), or a constant that does."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and RUN_RECORD in child.value:
            return True
        if isinstance(child, ast.Name | ast.Attribute) and (getattr(child, "id", None) or child.attr) in record_names:
            return True
    return False


def reads(node: ast.AST) -> set[str]:
    calls = (child.func for child in ast.walk(node) if isinstance(child, ast.Call))
    return {getattr(func, "id", None) or getattr(func, "attr", "") for func in calls} & READS


def record_readers(source: str) -> list[str]:
    """The functions (and ``<module>``'s own code) of ``source`` that both name run.json and read a file."""
    tree = ast.parse(source)
    record_names = {"RUN_RECORD"}  # the reader's constant, and any module constant holding the name
    for node in tree.body:
        if isinstance(node, ast.Assign) and names_record(node.value, set()):
            record_names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    units = [("<module>", body_without_docstring(tree))]
    units += [(node.name, body_without_docstring(node)) for node in ast.walk(tree) if isinstance(node, FUNCTIONS)]
    found = []
    for name, body in units:  # each unit's own code: its functions and classes are units of their own
        code = [statement for statement in body if not isinstance(statement, FUNCTIONS | ast.ClassDef)]
        if any(names_record(statement, record_names) for statement in code) and any(map(reads, code)):
            found.append(name)
    return found


def kit_modules() -> list[Path]:
    return sorted(path for folder in ("utils", "benchmarks") for path in (KIT_ROOT / folder).rglob("*.py"))


def test_no_module_but_the_reader_opens_run_json() -> None:
    readers = {}
    for path in kit_modules():
        relative = path.relative_to(KIT_ROOT).as_posix()
        if relative != READER and (found := record_readers(path.read_text())):
            readers[relative] = found
    assert not readers, f"read run.json with run_dir.read_run_record: {readers}"
    assert "read_run_record" in record_readers((KIT_ROOT / READER).read_text())  # the scan sees the reader


@pytest.mark.parametrize(
    "source",
    [
        'def f(run_dir):\n    return json.loads((run_dir / "run.json").read_text())',
        'def f(run_dir):\n    path = run_dir / "run.json"\n    with open(\n        path\n    ) as handle:\n        return handle.read()',
        'RECORD = "run.json"\ndef f(run_dir):\n    return read_json_file(run_dir / RECORD, "restore it")',
        'def f(run_dir):\n    return json.load((run_dir / f"{RUN_RECORD}").open())',
        'import json\nrecord = json.loads((RUN / "run.json").read_text())',
    ],
    ids=["inline", "spread over lines", "module constant", "the reader's constant", "module level"],
)
def test_the_scan_finds_a_reader_however_it_is_written(source: str) -> None:
    assert record_readers(source), source


def test_the_scan_leaves_a_docstring_or_a_copy_alone() -> None:
    source = '''def f(run_dir, previous):
    """Reads summary.csv; run.json is read elsewhere."""
    shutil.copy2(previous / "run.json", run_dir / "run.json")
    return pd.read_csv(run_dir / "summary.csv")
'''
    assert not record_readers(source) and re.search(RUN_RECORD, source)
