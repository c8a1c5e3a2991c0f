"""The benchmarks' child processes: a command run with a time limit, and messages read from spawned workers.

:func:`run_command` runs a command in its own session, echoing its output line by line, and ends
its whole process group when it outlives its time limit or when this process is stopped (Ctrl-C,
or a signal turned into :class:`Stopped` by :func:`stopping_on`). :func:`receive` reads one message from a
``multiprocessing`` queue with a time limit, and names a worker that died instead of waiting
for it forever.
"""

from __future__ import annotations

import math
import os
import queue as queue_module
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from utils.core.processes import Stopped, exit_code_meaning, stopping_on  # noqa: F401 - re-exported: the benchmarks use children.Stopped

KIT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_GRACE_S = 8.0  # after the stop signal, before SIGKILL: a benchmark ends its own children in that time
POLL_S = 1.0  # between looks at a worker's queue and its liveness


class ChildFailed(RuntimeError):
    """A worker process died, or sent nothing within its time limit."""


@dataclass
class Finished:
    """How a command ended: ``code`` None when it was ended (timeout or ``stopped``), its output lines."""

    code: int | None
    seconds: float
    lines: list[str] = field(default_factory=list)
    stopped: Stopped | None = None  # this process was stopped while the command ran: re-raise it when done


def end_process_group(
    process: subprocess.Popen, stop_signal: int = signal.SIGTERM, grace_s: float | None = None
) -> None:
    """``stop_signal`` to the process group (the command and its own workers), SIGKILL if the command
    outlives ``grace_s`` (default STOP_GRACE_S); once it has ended, SIGKILL to what is left of its group."""
    grace_s = STOP_GRACE_S if grace_s is None else grace_s
    for sig, wait_s in ((stop_signal, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader has ended; end what it left in its group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def run_command(
    command: Sequence[str],
    timeout_s: float = math.inf,
    on_line: Callable[[str], None] = print,
    stop_signal: int = signal.SIGTERM,
    grace_s: float | None = None,
) -> Finished:
    """Run ``command`` from the kit's root in its own session, passing each output line to ``on_line`` as it
    comes; after ``timeout_s``, or when this process is stopped, end its process group with
    ``stop_signal`` (SIGKILL after ``grace_s``). A :class:`Stopped` comes back in
    :attr:`Finished.stopped`; Ctrl-C (KeyboardInterrupt) is re-raised once the command has ended."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        list(command), cwd=KIT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    finished = Finished(None, 0.0)
    errors: list[Exception] = []

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:  # a progress bar redraws with \r: keep its last state only
            finished.lines.append(raw.decode(errors="replace").rstrip("\r\n").split("\r")[-1])
            try:
                on_line(finished.lines[-1])
            except Exception as err:  # noqa: BLE001 - raised once the command has ended; the pipe is drained on
                errors.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        finished.code = process.wait(timeout=None if math.isinf(timeout_s) else max(timeout_s, 0.1))
    except subprocess.TimeoutExpired:
        end_process_group(process, stop_signal, grace_s)
    except Stopped as stop:
        finished.stopped = stop
        end_process_group(process, stop_signal, grace_s)
    except BaseException:
        end_process_group(process, stop_signal, grace_s)
        raise
    reader.join(timeout=10)
    finished.seconds = time.monotonic() - started
    if errors:
        raise errors[0]
    return finished


def receive(queue: Any, processes: Sequence[Any], timeout_s: float, what: str) -> Any:
    """The next message from ``queue``, which ``processes`` (multiprocessing workers) write to. Raises
    :class:`ChildFailed` naming ``what`` when none comes within ``timeout_s``, or when a worker has died
    (non-zero exit) or every worker has ended, and the queue holds nothing more."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return queue.get(timeout=max(0.01, min(POLL_S, deadline - time.monotonic())))
        except queue_module.Empty:
            pass
        dead = [p for p in processes if not p.is_alive() and p.exitcode]
        if dead or not any(p.is_alive() for p in processes):
            try:  # what a worker sent just before it ended (its queue's feeder flushes before it exits)
                return queue.get(timeout=0.2)
            except queue_module.Empty:
                ended = dead[0] if dead else processes[0]
                why = exit_code_meaning(ended.exitcode) if ended.exitcode is not None else "ended"
                raise ChildFailed(f"{what}: its process {why} before it reported") from None
        if time.monotonic() >= deadline:
            raise ChildFailed(f"{what}: nothing reported within {timeout_s:.0f} s")


def end_workers(processes: Sequence[Any]) -> None:
    """Terminate ``processes`` (multiprocessing workers) that still run, SIGKILL if they linger."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()
