"""The command lines' one error handler, ``errors.run_command``: every ``main`` of utils/ parses its arguments and
hands its work to it, and none catches the kit's errors itself; the handler ends a known error with one ``error:``
line and exit code 2, with the traceback only under the debug switch, and lets a bug through."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from utils.core import errors
from utils.core.errors import ParameterError, UnreadableFileError, error_line, run_command

UTILS = Path(__file__).resolve().parent.parent / "utils"
# the command lines of utils/, by module: each has a main() that hands its work to run_command
COMMAND_LINES = {
    "colorize",
    "pipeline",
    "train.training",
    "kaggle.commands",
    "eval.group_pictures",
    "train.step_timing",
}
# mains that are no command line of the kit's, and why the handler has nothing to do there
NOT_COMMANDS = {"core.processes": "an exec shim: it becomes another program, whose errors are that program's"}
HANDLER = "run_command"
HANDLER_PARTS = {"exit_with_error_line", "cli_error_line", "command_ending", "traceback"}  # the tail's pieces


def mains() -> dict[str, tuple[ast.Module, ast.FunctionDef]]:
    """Every module of utils/ defining a module-level ``main``: its dotted name below utils -> (its tree, main)."""
    found = {}
    for path in sorted(UTILS.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                found[".".join(path.relative_to(UTILS).with_suffix("").parts)] = (tree, node)
    return found


def called_name(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def strings_of(tree: ast.AST) -> list[str]:
    """Every string literal of ``tree``, an f-string's literal parts joined as its text starts."""
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(part.value for part in node.values if isinstance(part, ast.Constant)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    return texts


def handler_problems(tree: ast.Module, main: ast.FunctionDef) -> list[str]:
    """What keeps a module's main from being: parse the arguments, hand the work to run_command, return its code."""
    problems = []
    if any(isinstance(node, ast.Try | ast.TryStar) for node in ast.walk(main)):
        problems.append("main has a try block: the handler is run_command's")
    returns = [node for node in ast.walk(main) if isinstance(node, ast.Return)]
    if not returns or any(
        not (isinstance(ret.value, ast.Call) and called_name(ret.value) == HANDLER) for ret in returns
    ):
        problems.append(f"main does not return {HANDLER}(...) (each of its returns)")
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    used |= {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    if used & HANDLER_PARTS:
        problems.append(f"uses {sorted(used & HANDLER_PARTS)}: the error tail lives in run_command only")
    printed = [text for text in strings_of(tree) if text.lstrip().startswith("error:")]
    if printed:
        problems.append(f"writes its own error line {printed[0]!r}")
    return problems


def test_every_main_hands_its_work_to_the_one_handler() -> None:
    found = mains()
    assert set(found) == COMMAND_LINES | set(NOT_COMMANDS), "a new main: a command line, or one of NOT_COMMANDS?"
    problems = {name: handler_problems(*found[name]) for name in sorted(COMMAND_LINES)}
    assert not {name: why for name, why in problems.items() if why}


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)


def fails(error: BaseException):
    def work() -> int:
        raise error

    return work


def the_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    printed = capsys.readouterr()
    assert not printed.out
    return printed.err.strip().splitlines()


KNOWN = [ParameterError("parameter 'epochs' = 0: must be at least 1"), UnreadableFileError("run.json: damaged")]


@pytest.mark.parametrize("error", KNOWN)
def test_a_known_error_is_one_line_and_exit_2(error: Exception, no_debug, capsys) -> None:
    assert run_command(fails(error)) == 2
    assert the_lines(capsys) == [f"error: {error}"]


def test_the_debug_switch_puts_the_traceback_before_the_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert run_command(fails(ParameterError("parameter 'epochs' = 0"))) == 2
    lines = the_lines(capsys)
    assert lines[0].startswith("Traceback") and lines[-2].endswith("ParameterError: parameter 'epochs' = 0")
    assert [line for line in lines if line.startswith("error:")] == lines[-1:] == ["error: parameter 'epochs' = 0"]
    monkeypatch.setenv(errors.DEBUG_ENV, "0")
    assert run_command(fails(ParameterError("parameter 'epochs' = 0"))) == 2
    assert the_lines(capsys) == ["error: parameter 'epochs' = 0"]


@pytest.mark.parametrize("error", [ZeroDivisionError("a bug"), KeyboardInterrupt(), SystemExit(3)])
def test_a_bug_ctrl_c_or_an_exit_goes_through_untouched(error: BaseException, no_debug, capsys) -> None:
    with pytest.raises(type(error)) as caught:
        run_command(fails(error))
    assert caught.value is error and not the_lines(capsys)
    assert caught.value.__traceback__ is not None and caught.value.__traceback__.tb_next is not None  # work's frame


def test_the_work_gives_the_exit_code_and_an_ending_its_own_words(no_debug, capsys) -> None:
    assert run_command(lambda: 1) == 1 and run_command(lambda: None) == 0
    assert run_command(fails(ParameterError("bad")), (), {ParameterError: error_line(1)}) == 1  # ending, not known
    endings = {ZeroDivisionError: lambda err: (f"stopped: {err}", 130), ValueError: error_line(7, "check")}
    assert run_command(fails(ZeroDivisionError("by a signal")), (), endings) == 130
    assert run_command(fails(ValueError("dataset 'a/b': not found")), (), endings) == 7
    assert the_lines(capsys) == ["error: bad", "stopped: by a signal", "error: check: dataset 'a/b': not found"]
    with pytest.raises(ParameterError):
        run_command(fails(ParameterError("not known here")), ())  # a command's known errors are its own


def test_a_refused_write_is_one_line_naming_the_directory(tmp_path: Path, no_debug, capsys) -> None:
    target = tmp_path / "eval" / "summary.csv"
    assert run_command(fails(PermissionError(13, "Permission denied", str(target)))) == 2
    why = "(Permission denied); make the directory writable, or use another one"
    assert the_lines(capsys) == [f"error: {target.parent}: cannot write summary.csv there {why}"]
