"""A run's processes live and die together: children bound to their parent's death, and signals that stop a run.

A run is a chain of processes: the pipeline, a train notebook's papermill process, its kernel, maybe torchrun and
its ranks. Each link binds itself to its parent's death with :func:`die_with_parent` (Linux's
``PR_SET_PDEATHSIG``): when a parent dies, even by SIGKILL, the kernel sends its child SIGKILL, and so on down
the chain. The parent names itself in the child's environment (``KIT_PARENT_PID``), so a child started after its
parent had already died (the race before the binding) sees that and exits at once. A command that is not the
kit's (torchrun) is bound by :func:`bound_to_parent`, which starts it through ``python -m utils.core.processes``.

:func:`stopping_on` turns SIGTERM, SIGHUP (what ``timeout``, ``kill`` and a closed terminal send) into
:class:`Stopped`, so that a run stops the way Ctrl-C stops it: every child first.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PARENT_ENV = "KIT_PARENT_PID"  # the process a child of the run expects as its parent
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stopped(BaseException):
    """This process was asked to stop (SIGTERM, SIGHUP, ...): raised by the handler :func:`stopping_on` sets."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stopping_on(*signums: int) -> Iterator[None]:
    """Inside: each of ``signums`` raises :class:`Stopped` (once: a second signal while stopping is ignored).
    The previous handlers come back on the way out. Signal handlers belong to the main thread: elsewhere this
    changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for other in signums:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def die_with_parent() -> None:
    """Bind this process to its parent's death, when a process of the run started it (``KIT_PARENT_PID`` set),
    and name this process as the parent its own children expect.

    If the parent named there has already died (this process was reparented before it could bind itself), this
    process exits at once: nobody is left to read what it would do. A name that is neither the parent nor dead (an
    environment passed on through a process that does not bind itself) binds nothing. Idempotent; Linux only
    (elsewhere nothing is bound, and ipykernel's own poll of its parent remains)."""
    expected = os.environ.get(PARENT_ENV, "")
    if not expected.isdigit() or int(expected) == os.getpid():
        return
    if int(expected) == os.getppid():
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != int(expected):  # the parent died between the two looks: the signal came too late
            os._exit(128 + signal.SIGKILL)
    elif not _alive(int(expected)):
        print(f"process {os.getpid()}: its parent, process {expected}, has ended; exiting", file=sys.stderr)
        os._exit(128 + signal.SIGKILL)
    os.environ[PARENT_ENV] = str(os.getpid())


def set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)``: the signal this process receives when its parent dies. False where
    the system has none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here: most processes never bind

    libc = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter runs on
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def bound_to_parent(command: list[str]) -> list[str]:
    """``command`` (not the kit's: torchrun) started so that it dies with this process: through
    ``python -m utils.core.processes``, which binds itself and then becomes ``command`` (exec: the same process)."""
    return [sys.executable, "-m", "utils.core.processes", "--", *command]


def child_environment() -> dict[str, str]:
    """The environment of a child that :func:`die_with_parent` binds to this process."""
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def main(argv: list[str]) -> None:
    """``python -m utils.core.processes -- COMMAND ...``: bind to the parent, then exec COMMAND (its children expect it
    as their parent)."""
    if argv[:1] != ["--"] or len(argv) < 2:
        raise SystemExit("usage: python -m utils.core.processes -- COMMAND [ARG ...]")
    die_with_parent()
    os.environ[PARENT_ENV] = str(os.getpid())  # after exec, the command is this process
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])


def exit_code_meaning(exit_code: int) -> str:
    """``killed by signal 9 (SIGKILL)`` for a negative exit code (a process killed by a signal), else
    ``exited with code N``: how a dead child process is described."""
    if exit_code >= 0:
        return f"exited with code {exit_code}"
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:
        name = "an unnamed signal"
    return f"killed by signal {-exit_code} ({name})"
