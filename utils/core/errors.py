"""The kit's own errors, and the one line a command prints for them: the base layer, importing no other module.

Each error's message names the file or the parameter and says what to do; a command line prints it as one
``error: ...`` line, with no traceback. Anything else is a bug, whose traceback is wanted.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import traceback
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


def exit_with_error_line(err: BaseException, kit_errors: tuple[type[BaseException], ...]) -> int:
    """What a command line's ``main`` does with ``err`` in its ``except`` block: one ``error: ...`` line (after the
    traceback, with the debug switch ``KIT_DEBUG=1``), and the exit code 2; anything :func:`cli_error_line` does not
    know is a bug, raised again with its traceback."""
    line = cli_error_line(err, kit_errors)
    if line is None:
        raise err
    if debugging():
        traceback.print_exception(err, file=sys.stderr)
    print(line, file=sys.stderr)
    return 2


def refused_write(err: BaseException) -> tuple[Path, str] | None:
    """(the file, the system's reason) when ``err``, or the error it was raised from, is a write the system refused
    (no permission, a read-only file system); the file is ``err.target`` where the error names the file meant (an
    atomic write's, whose temporary file was refused)."""
    for link in (err, err.__cause__):
        if isinstance(link, OSError) and link.errno in WRITE_REFUSED_ERRNOS and link.filename:
            return Path(getattr(err, "target", None) or os.fsdecode(link.filename)), str(link.strerror)
    return None
