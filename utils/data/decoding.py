"""The decoding pool of a prepare: image files decoded, filtered and resized in worker processes, in file order.

A worker that dies (the out-of-memory killer, a crashing native decoder) or hangs costs at most its files, never
the prepare: its files are decoded again, each in a process of its own (:class:`DecodePool`).
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.process
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError  # the built-in TimeoutError from Python 3.11 on
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from utils.core.parameters import RunParams
from utils.core.processes import exit_code_meaning
from utils.data.near_duplicates import HASH_SIDE, near_signature
from utils.data.sources import Candidate, SourceFile, near_grayscale_reason
from utils.imaging.images import is_jpeg, load_rgb, resize_square


@dataclass(frozen=True)
class DecodeSettings:
    size: int
    resize: str
    min_colorfulness: float
    max_pixels: int
    hash_only: bool = False  # the hash pass: see hash_source_file


def decode_in_full(file: SourceFile, settings: DecodeSettings) -> tuple[Candidate, np.ndarray | None]:
    """One file -> (a resized Candidate or a rejection, the full decoded pixels where there are any)."""
    rgb, reason = load_rgb(file.path, min_side=max(1, settings.size // 2), max_pixels=settings.max_pixels)
    if rgb is None:
        return Candidate(file.path, file.group, None, reason, folder_group=file.folder_group), None
    reason = near_grayscale_reason(rgb, settings.min_colorfulness)
    if reason is not None:
        return Candidate(file.path, file.group, None, reason, folder_group=file.folder_group), rgb
    sha1 = hashlib.sha1(rgb.tobytes()).hexdigest()
    resized = resize_square(rgb, settings.size, settings.resize)
    return Candidate(file.path, file.group, resized, None, sha1, rgb.shape[1], rgb.shape[0], file.folder_group), rgb


def hash_source_file(file: SourceFile, settings: DecodeSettings) -> Candidate:
    """The hash pass's work on one file: a JPEG is decoded at reduced scale (PIL's draft, at least ``HASH_SIDE``
    px a side) and only hashed, left undecided for the accept pass; any other file (or a JPEG that fails so) is
    decoded in full once, here: its Candidate is final, with the hash of its full pixels when accepted. The
    thumbnail (utils/data/thumbnail_check.py) comes from the same content crop as the hash."""
    if is_jpeg(file.path):
        small, _ = load_rgb(file.path, max_pixels=settings.max_pixels, accept_gray=True, draft_side=HASH_SIDE)
        if small is not None:
            digest, thumbnail = near_signature(small)
            return Candidate(
                file.path, file.group, None, folder_group=file.folder_group, hash=digest, thumbnail=thumbnail
            )
    candidate, rgb = decode_in_full(file, settings)
    if candidate.rgb is None:
        return candidate
    digest, thumbnail = near_signature(rgb)
    return replace(candidate, hash=digest, thumbnail=thumbnail)


def decode_source_file(task: tuple[SourceFile, DecodeSettings]) -> Candidate:
    """One file -> a resized Candidate or a rejection (``hash_only``: the hash pass's Candidate)."""
    file, settings = task
    if settings.hash_only:
        return hash_source_file(file, settings)
    return decode_in_full(file, settings)[0]


# Test-only: makes a decoding worker (never the prepare's own process) misbehave on purpose. "kill:<file>": it
# SIGKILLs itself on that file; "hang:<file>": it sleeps forever on it (<file>: the file's name, or the end of its
# path, "movie/a.jpg"); "slow:<seconds>": it sleeps that long before each file. Read by the prepare when it starts
# workers and handed to each (a forkserver's worker inherits the server's environment, fixed when the server started).
DECODE_FAULT_ENV = "COLORIZATION_TEST_DECODE_FAULT"
_decode_fault = ""  # in a decoding worker: the DECODE_FAULT_ENV value it was handed


def decode_fault_from_env() -> str:
    """The test-only fault of ``DECODE_FAULT_ENV``, checked; "" when unset."""
    fault = os.environ.get(DECODE_FAULT_ENV, "")
    action, _, argument = fault.partition(":")
    if fault and not ((action in ("kill", "hang") and argument) or (action == "slow" and _is_number(argument))):
        raise ValueError(f"{DECODE_FAULT_ENV}={fault!r}: expected kill:<file>, hang:<file> or slow:<seconds>")
    return fault


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _misbehave_for_a_test(file: SourceFile) -> None:
    action, _, argument = _decode_fault.partition(":")
    path = Path(file.path).as_posix()
    if action == "slow":
        time.sleep(float(argument))
    elif path == argument or path.endswith("/" + argument):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        while True:  # hang
            time.sleep(3600)


def decode_files(files: list[SourceFile], settings: DecodeSettings) -> list[Candidate]:
    """Worker task: a chunk of files, decoded in order."""
    candidates = []
    for file in files:
        if _decode_fault:
            _misbehave_for_a_test(file)
        candidates.append(decode_source_file((file, settings)))
    return candidates


def crash_reason(exit_code: int | None) -> str:
    """Why a file was rejected whose decoding process died: its exit code (negative: the signal that killed it)."""
    if exit_code is None:
        return "decoder crashed: its process ended with an unknown exit code"
    if exit_code < 0:
        return f"decoder crashed: {exit_code_meaning(exit_code)}"
    return f"decoder crashed: its process exited with code {exit_code} before returning a result"


def timeout_reason(timeout_s: float) -> str:
    return f"decoder timed out after {timeout_s:g} s (decode_timeout_s)"


TASKS_PER_WORKER = 8  # chunks per worker over a job: a slow chunk near the end leaves the others little to wait for
MAX_CHUNK_FILES = 16  # bounds the memory in flight and the wait for the first image
IN_FLIGHT_PER_WORKER = 3  # chunks submitted ahead per worker: one decoding, the next ones queued


def decode_chunk_size(n_files: int, workers: int) -> int:
    """Files per task, sized to the job: about ``TASKS_PER_WORKER`` tasks per worker, 1 to ``MAX_CHUNK_FILES``."""
    return max(1, min(MAX_CHUNK_FILES, math.ceil(n_files / (workers * TASKS_PER_WORKER))))


# Which process imported this module: in a decoding worker it is the forkserver's, not the worker's own
# (the worker was forked with torch and the decoders already imported).
IMPORTED_IN_PID = os.getpid()


def _init_decode_worker(fault: str = "") -> None:
    global _decode_fault
    _decode_fault = fault
    # Parallelism comes from the processes: more torch threads per process only fight over the same cores
    # (colorfulness of one image: 5-8 ms with 1 thread, 27-140 ms with 2, on the shared 2-core machine).
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group: the parent stops the pool; workers need not print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decode_process_context() -> multiprocessing.context.BaseContext:
    """A forkserver that imported the prepare's modules (torch included) once, where available; else spawn.

    Workers forked from it start in milliseconds instead of each importing torch (seconds). Unlike
    plain ``fork``, the server is a fresh interpreter, so it is safe inside a Jupyter kernel that
    holds threads.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # utils.data.prepare imports this module (torch included). Python 3.11's server does not preload a script's
    # __main__ (each worker re-runs it), so it also imports the prepare's modules such a script needs.
    context.set_forkserver_preload(["__main__", "utils.data.prepare"])  # takes effect when the server first starts
    return context


def decode_executor(workers: int, fault: str = "") -> ProcessPoolExecutor:
    """``workers`` decoding processes: forked from the preloaded forkserver, one torch thread each
    (``fault``: see ``DECODE_FAULT_ENV``)."""
    return ProcessPoolExecutor(
        workers, mp_context=decode_process_context(), initializer=_init_decode_worker, initargs=(fault,)
    )


def kill_workers(executor: ProcessPoolExecutor) -> None:
    """SIGKILL every worker of ``executor``: a worker stuck inside a decoder cannot be cancelled, only killed.
    The executor then reports itself broken, and its unfinished futures raise BrokenProcessPool."""
    kill = getattr(executor, "kill_workers", None)  # Python 3.14 and later
    if kill is not None:
        kill()
        return
    for process in list((executor._processes or {}).values()):  # before 3.14: pid -> Process, its own record
        process.kill()


def _decode_alone(
    sender: multiprocessing.connection.Connection, file: SourceFile, settings: DecodeSettings, fault: str
) -> None:
    """A lone decoding process's whole work: one file, its Candidate sent back."""
    _init_decode_worker(fault)
    sender.send(decode_files([file], settings)[0])
    sender.close()


@dataclass
class LoneDecode:
    """One file decoded in a fresh process of its own, which may die or hang without harm to any other file."""

    file: SourceFile
    process: multiprocessing.process.BaseProcess
    receiver: multiprocessing.connection.Connection
    deadline: float  # time.monotonic()
    timeout_s: float

    @classmethod
    def start(cls, file: SourceFile, settings: DecodeSettings, timeout_s: float, fault: str) -> LoneDecode:
        context = decode_process_context()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_decode_alone, args=(sender, file, settings, fault), daemon=True)
        process.start()
        sender.close()  # the child holds its own copy: the receiver sees EOF when the child dies
        return cls(file, process, receiver, time.monotonic() + timeout_s, timeout_s)

    def outcome(self) -> Candidate | None:
        """Its Candidate, or a rejection naming the signal or the timeout once the process died or ran out of
        time; None while it is still decoding."""
        alive = self.process.is_alive()  # asked before the pipe: a result sent just before exiting is not lost
        if self.receiver.poll():
            try:
                candidate = self.receiver.recv()
            except EOFError:  # closed without a result: the process died
                pass
            else:
                self.stop()
                return candidate
        elif alive:
            if time.monotonic() < self.deadline:
                return None
            self.stop()
            return Candidate(self.file.path, self.file.group, None, timeout_reason(self.timeout_s))
        self.process.join()
        self.receiver.close()
        return Candidate(self.file.path, self.file.group, None, crash_reason(self.process.exitcode))

    def stop(self) -> None:
        """Kill the process if it still runs (a no-op once it has ended) and reap it."""
        self.process.kill()
        self.process.join()
        self.receiver.close()


def decode_alone(
    files: list[SourceFile], settings: DecodeSettings, workers: int, timeout_s: float, fault: str = ""
) -> list[Candidate]:
    """Each file in a fresh process of its own, ``workers`` at a time, in file order: a file that kills its
    process, or makes it take longer than ``timeout_s``, is rejected with the reason; the others decode as usual."""
    waiting = deque(enumerate(files))
    running: dict[int, LoneDecode] = {}
    decided: dict[int, Candidate] = {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index, file = waiting.popleft()
                running[index] = LoneDecode.start(file, settings, timeout_s, fault)
            for index, lone in list(running.items()):
                candidate = lone.outcome()
                if candidate is not None:
                    decided[index] = candidate
                    del running[index]
            if running:
                first_deadline = min(lone.deadline for lone in running.values())
                ready = [e for lone in running.values() for e in (lone.receiver, lone.process.sentinel)]
                multiprocessing.connection.wait(ready, timeout=max(0.0, first_deadline - time.monotonic()))
    finally:
        for lone in running.values():
            lone.stop()
    return [decided[index] for index in range(len(files))]


def finished_future(candidates: list[Candidate]) -> Future[list[Candidate]]:
    future: Future[list[Candidate]] = Future()
    future.set_result(candidates)
    return future


def succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


# a chunk of files submitted to the pool, and its future
InFlight = tuple[list[SourceFile], Future[list[Candidate]]]


class DecodePool:
    """The decoding processes of a whole prepare: started on first use, reused for every domain and
    split, shut down by :meth:`close` (a ``with`` block closes it on error and on KeyboardInterrupt too).

    A worker that dies (killed by a signal: the out-of-memory killer, a crashing native decoder) or
    hangs (no result within ``timeout_s`` per file) costs at most its files, never the prepare: see
    :meth:`decode`. ``workers`` <= 1 decodes in this process, with one torch thread while the pool is
    open, and without that protection.
    """

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.fault = decode_fault_from_env()
        self.executor: ProcessPoolExecutor | None = None
        self._abandoned: list[Future[list[Candidate]]] = []  # decoding a stream closed early left running
        self._threads_before: int | None = None

    def __enter__(self) -> DecodePool:
        # The prepare's own process decodes (one worker) or scores the demo's generated images: one image is too
        # little work to share, and more torch threads only contend (10x slower with 2 on a busy 2-core machine).
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(interrupted=exc_type is not None)

    def close(self, interrupted: bool = False) -> None:
        """Shut the workers down; ``interrupted`` (an error or Ctrl-C), or work nobody will read still running
        (it may hang), kills them instead of waiting."""
        if self.executor is not None:
            if interrupted or not all(future.done() for future in self._abandoned):
                kill_workers(self.executor)
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self._abandoned = []
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def start(self) -> ProcessPoolExecutor:
        """The worker processes, started on first call (and after :meth:`recover`)."""
        if self.executor is None:
            self.executor = decode_executor(self.workers, self.fault)
        return self.executor

    def submit(self, chunk: list[SourceFile], settings: DecodeSettings) -> Future[list[Candidate]]:
        try:
            return self.start().submit(decode_files, chunk, settings)
        except BrokenProcessPool as err:  # a worker died since the last result: recover() decodes these alone
            failed: Future[list[Candidate]] = Future()
            failed.set_exception(err)
            return failed

    def oldest_result(self, in_flight: deque[InFlight], settings: DecodeSettings) -> list[Candidate]:
        """The candidates of the oldest chunk in flight, which leaves it; waited for at most its files x
        ``timeout_s`` (from now: the oldest chunk is decoding, or is next), then its pool counts as hung."""
        chunk, future = in_flight[0]
        try:
            candidates = future.result(timeout=len(chunk) * self.timeout_s)
        except BrokenProcessPool:
            self.recover(in_flight, settings, hung=False)
        except FutureTimeoutError:
            self.recover(in_flight, settings, hung=True)
        else:
            in_flight.popleft()
            return candidates
        return in_flight.popleft()[1].result()

    def recover(self, in_flight: deque[InFlight], settings: DecodeSettings, hung: bool) -> None:
        """After a worker died, or the oldest chunk found no result in time (``hung``: its workers are killed,
        the one way to stop a stuck decoder): the next chunk starts a fresh pool, and the files of every chunk
        in flight that did not finish are decoded again, each in a process of its own, so a file that kills or
        hangs its process again is rejected with the reason and costs no other file. A one-file chunk that hung
        is rejected at once: its file is known. Their results replace their futures in ``in_flight``."""
        broken = self.start()
        if hung:
            kill_workers(broken)
        self.executor = None
        broken.shutdown(wait=True, cancel_futures=True)  # after it, every future it held is settled
        head, head_future = in_flight[0]
        known_hang = hung and len(head) == 1 and not succeeded(head_future)
        if known_hang:
            in_flight[0] = (
                head,
                finished_future([Candidate(head[0].path, head[0].group, None, timeout_reason(self.timeout_s))]),
            )
        redo = [i for i, (_, future) in enumerate(in_flight) if not succeeded(future)]
        files = [file for i in redo for file in in_flight[i][0]]
        what = "a decoding process died"
        if hung:
            what = f"no result for {len(head)} file(s) in {len(head) * self.timeout_s:g} s (decode_timeout_s per file)"
        rejected = f", {head[0].path} is rejected" if known_hang else ""
        print(
            f"prepare: {what}; a fresh pool goes on{rejected}, and the {len(files)} file(s) left unfinished are "
            "decoded again, each in a process of its own",
            flush=True,
        )
        decided = iter(decode_alone(files, settings, self.workers, self.timeout_s, self.fault))
        for i in redo:
            chunk = in_flight[i][0]
            in_flight[i] = (chunk, finished_future([next(decided) for _ in chunk]))

    def decode(
        self,
        files: list[SourceFile],
        settings: DecodeSettings,
        still_needed: Callable[[], int] | None = None,
    ) -> Iterator[Candidate]:
        """Candidates in file order, whatever the worker count.

        Decoding runs ahead of the consumer by at most ``IN_FLIGHT_PER_WORKER`` chunks per worker and,
        with ``still_needed``, by at most that many files, so a split that fills up leaves almost
        nothing decoded for nothing. Closing the stream early cancels the chunks not yet started.
        A worker that dies or hangs is replaced, and its files are retried alone (:meth:`recover`):
        the candidates are those of a run without the death, but for a file that kills or hangs its
        process again, rejected with the signal or the timeout.

        Args:
            files: decoded in this order.
            settings: how to decode and resize.
            still_needed: how many more images the consumer will take; asked before each submission.
        """
        if self.workers == 1:
            for file in files:
                yield decode_source_file((file, settings))
            return
        size = decode_chunk_size(len(files), self.workers)
        max_chunks = self.workers * IN_FLIGHT_PER_WORKER
        # (chunk, future) pairs, oldest first: the files of each task stay known to the consumer
        in_flight: deque[InFlight] = deque()
        files_ahead = 0  # submitted and not yet yielded
        next_file = 0
        try:
            while in_flight or next_file < len(files):
                room = (still_needed() if still_needed else len(files)) - files_ahead
                while next_file < len(files) and len(in_flight) < max_chunks and (room > 0 or not in_flight):
                    # near the end of a split, smaller chunks keep every worker busy on what is still needed
                    take = max(1, min(size, room // self.workers))
                    chunk = files[next_file : next_file + take]
                    in_flight.append((chunk, self.submit(chunk, settings)))
                    next_file += len(chunk)
                    files_ahead += len(chunk)
                    room -= len(chunk)
                for candidate in self.oldest_result(in_flight, settings):
                    files_ahead -= 1
                    yield candidate
        finally:
            running = [future for _, future in in_flight if not future.cancel() and not future.done()]
            # left running, nobody will read them: close() must not wait for them (they may hang)
            self._abandoned = [future for future in self._abandoned if not future.done()] + running


def prepare_workers(params: RunParams) -> int:
    """Decoding processes for a prepare: ``prepare_workers``, 0 meaning every core (1: in this process)."""
    return params.prepare_workers or os.cpu_count() or 1
