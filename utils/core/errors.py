"""The kit's own errors, and the one line a command prints for them: the base layer, importing no other module.

Each error's message names the file or the parameter and says what to do; a command line prints it as one
``error: ...`` line, with no traceback: every command line's ``main`` hands its work to :func:`run_command`, the one
place that does. Anything else is a bug, whose traceback is wanted.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEBUG_ENV = "KIT_DEBUG"  # set to 1: a command line's error line comes after the error's traceback


class ParameterError(ValueError):
    """A parameter (or the run directory it points at) is unusable; the message names it."""


class KaggleSetupError(RuntimeError):
    """Something the Kaggle commands need is missing; the message says what and where."""


class UnreadableFileError(ValueError):
    """A file of a run (run.json, the manifest, a shard, a checkpoint) is missing, damaged or not what it should
    be; the message names it and says what to do."""


def read_json_file(path: str | Path, remedy: str) -> Any:
    """A JSON file's content; one that is not JSON is an :class:`UnreadableFileError` naming it, then ``remedy``."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableFileError(f"{path}: damaged, not JSON ({err}); {remedy}") from None


WRITE_REFUSED_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def cli_error_line(err: BaseException, kit_errors: tuple[type[BaseException], ...]) -> str | None:
    """A command line's one-line ``error: ...`` for one of ``kit_errors`` (their messages name the file or the
    parameter), for a write the system refused (a read-only run directory) or could not finish (a full disk: an
    atomic write's error, which names its file); None for anything else: a bug, whose traceback is wanted."""
    if isinstance(err, kit_errors):
        return f"error: {err}"
    refused = refused_write(err)
    if refused is not None:
        target, reason = refused
        return (
            f"error: {target.parent}: cannot write {target.name} there ({reason}); "
            "make the directory writable, or use another one"
        )
    if getattr(err, "target", None) is not None and isinstance(err.__cause__, OSError):
        return f"error: {err}"  # a write the system could not finish (a full disk): the message names the file
    return None


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


Ending = Callable[[BaseException], tuple[str, int]]  # an error -> the command's last line, and its exit code
KNOWN_ERRORS: tuple[type[BaseException], ...] = (ParameterError, UnreadableFileError)


def error_line(exit_code: int, subject: str = "") -> Ending:
    """The ending ``error: <the error's message>`` (``error: <subject>: <message>`` with a subject: the command
    that met it) and ``exit_code``: for :func:`run_command`'s ``endings``."""
    return lambda err: (f"error: {subject}: {err}" if subject else f"error: {err}", exit_code)


def run_command(
    work: Callable[[], int | None],
    known: tuple[type[BaseException], ...] = KNOWN_ERRORS,
    endings: Mapping[type[BaseException], Ending] | None = None,
) -> int:
    """Every command line's one error handler: its ``main`` parses the arguments, then returns
    ``run_command(lambda: <the work>, ...)``, the work's exit code (None: 0).

    An error the command knows ends it with one line on stderr and no traceback: one of ``endings`` (the first
    type that matches) in that ending's words and exit code; one of ``known``, or a write the system refused or
    could not finish, as ``error: <message>`` with the exit code 2. With the debug switch (``KIT_DEBUG=1``) the
    error's traceback comes before that line. Anything else is a bug (or Ctrl-C): raised again, its traceback
    intact."""
    try:
        code = work()
    except BaseException as err:
        ending = command_ending(err, known, endings or {})
        if ending is None:
            raise
        line, code = ending
        if debugging():
            traceback.print_exception(err, file=sys.stderr)
        print(line, file=sys.stderr)
        return code
    return 0 if code is None else code


def command_ending(
    err: BaseException, known: tuple[type[BaseException], ...], endings: Mapping[type[BaseException], Ending]
) -> tuple[str, int] | None:
    """(the last line, the exit code) a command ends with on ``err``; None for a bug."""
    for kind, ending in endings.items():
        if isinstance(err, kind):
            return ending(err)
    line = cli_error_line(err, known)
    return None if line is None else (line, 2)


def refused_write(err: BaseException) -> tuple[Path, str] | None:
    """(the file, the system's reason) when ``err``, or the error it was raised from, is a write the system refused
    (no permission, a read-only file system); the file is ``err.target`` where the error names the file meant (an
    atomic write's, whose temporary file was refused)."""
    for link in (err, err.__cause__):
        if isinstance(link, OSError) and link.errno in WRITE_REFUSED_ERRNOS and link.filename:
            return Path(getattr(err, "target", None) or os.fsdecode(link.filename)), str(link.strerror)
    return None
