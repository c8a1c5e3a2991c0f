"""The run directory: its one writer, ``run.json`` and its one reader, and the one way any file in it is written.

One writer at a time. :func:`hold_run_dir` takes an exclusive lock on ``<run_dir>/writer.lock`` (the kernel's
``flock``: it ends with the process holding it, so a lock is never stale) and records the holder there: its PID,
command and start. A second writer is refused at once, with that record. The processes the holder starts (the
pipeline's notebooks and their kernels, torchrun's ranks) find the holder's identity in their environment
(``KIT_RUN_DIR_WRITER``) and, the holder being their ancestor, write under its lock; they are also bound to their
parent's death (:mod:`utils.core.processes`). Readers take no lock.

Each library call that writes a run directory (preparing, training, evaluating, a figure, the report, a stage's
record in ``run.json``) holds it for the call alone (:func:`writes_run_dir`): a notebook's cells hold nothing
between them, and a cell that fails leaves nothing held.

Every file is written by :func:`atomic_write`: into a temporary file of a unique name beside the target, renamed
over it once complete, so a reader never sees half a file and two writers never share a temporary file. On
failure the temporary file is removed and the error names the file. Temporary files a killed writer left behind
are removed when the next writer takes the run directory.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl  # POSIX: Linux (Kaggle) and macOS
import functools
import inspect
import json
import os
import re
import resource  # POSIX, as fcntl
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from utils.core.errors import UnreadableFileError, read_json_file
from utils.core.processes import PARENT_ENV, die_with_parent

LOCK_NAME = "writer.lock"
WRITER_ENV = "KIT_RUN_DIR_WRITER"  # the holder's identity, for the processes it starts
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # atomic_write's names: .<target>.<random>.tmp
HOLDER_SETTLE_S = 1.0  # a writer that has just taken the lock records itself within this, at most
P = ParamSpec("P")
R = TypeVar("R")


class AtomicWriteError(OSError):
    """A file could not be written; the message names it. The target is as it was before."""

    def __init__(self, target: Path, cause: BaseException) -> None:
        super().__init__(failure_message(target, cause))
        self.target = target  # the file meant, not its temporary: what a command's one-line error names


class RunDirBusy(RuntimeError):
    """Another process is writing the run directory; the message names it."""


# --- atomic writes ---------------------------------------------------------------------------------


@functools.cache
def new_file_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask); mkstemp's 0o600 would hide results from
    other users."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """``with atomic_write(target) as temporary: write(temporary)``: the target appears, complete, when the block
    ends. A failure (a full disk, a file-size limit, an error in ``write``) removes the temporary file and raises
    :class:`AtomicWriteError` naming the target; an interruption (Ctrl-C) removes it too."""
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise AtomicWriteError(path, err) from err
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, Exception) and not isinstance(err, AtomicWriteError):
            cause = system_error_within(err)
            raise AtomicWriteError(path, cause) from cause
        raise


def system_error_within(err: Exception) -> Exception:
    """The system's error (an OSError: a full disk, a file-size limit) that ``err`` was raised from, else ``err``.
    A library's own RuntimeError (torch's archive writer) raised while handling one says only that its file went
    wrong: its context is followed too. Any other error raised while handling an OSError is a bug of its own."""
    link: BaseException | None = err
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        if isinstance(link, OSError):
            return link
        seen.add(id(link))
        link = link.__cause__ or (link.__context__ if type(link) is RuntimeError else None)
    return err


def failure_message(path: Path, err: BaseException) -> str:
    """``<path>: could not be written (<error>); N MiB free on its file system ...``."""
    lines = str(err).strip().splitlines() or [""]
    why = f"{type(err).__name__}: {lines[0][:300]}"
    return f"{path}: could not be written ({why}){room_left(path, err)}. Any earlier version of it is unchanged, and no temporary file is left."


def room_left(path: Path, err: BaseException) -> str:
    """``; N MiB free on its file system``, or for a file past the process's file-size limit, that limit."""
    if isinstance(err, OSError) and err.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            size = f"{limit / 2**20:.0f} MiB" if limit >= 2**20 else f"{limit} bytes"
            return f"; this process may write files of at most {size} (its file-size limit, ulimit -f)"
    try:
        return f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free on its file system"
    except OSError:
        return ""


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path) as temporary:
        temporary.write_text(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as temporary:
        temporary.write_bytes(data)


def write_csv_atomic(path: str | Path, frame: pd.DataFrame) -> None:  # noqa: F821
    with atomic_write(path) as temporary:
        frame.to_csv(temporary, index=False)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """The temporary files of writers that were killed mid-write (SIGKILL, a lost machine): with the run directory
    held, no writer of it is left to finish them."""
    removed = []
    for folder, _, files in os.walk(run_dir):
        for name in files:
            if TEMPORARY.match(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# --- run.json: the run's record ---------------------------------------------------------------------

RUN_RECORD = "run.json"
# what to do about a damaged run.json
RUN_RECORD_REMEDY = "restore it, or move it aside: the next stage writes a new one (data and models are kept)"


def read_run_record(run_dir: str | Path) -> dict[str, Any]:
    """``run.json``'s record: the one reader of it. ``{}`` while there is none (no stage has recorded itself yet);
    a damaged one (not JSON, or not a JSON object) is an :class:`UnreadableFileError` naming it, then
    :data:`RUN_RECORD_REMEDY`. A reader takes no lock: every write of it is atomic."""
    path = Path(run_dir) / RUN_RECORD
    try:
        record = read_json_file(path, RUN_RECORD_REMEDY)
    except FileNotFoundError:
        return {}
    if not isinstance(record, dict):
        raise UnreadableFileError(f"{path}: damaged, not a JSON object; {RUN_RECORD_REMEDY}")
    return record


@contextmanager
def locked_run_record(run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """``run.json`` as a dict to change, read and written back under an exclusive lock (``run.json.lock``):
    train notebooks running at once each record their stage, and none is lost."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / f"{RUN_RECORD}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = read_run_record(run_dir)
        yield record
        write_text_atomic(run_dir / RUN_RECORD, json.dumps(record, indent=2) + "\n")


# --- one writer ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory, as ``writer.lock`` records it."""

    pid: int
    command: str
    what: str  # the pipeline, or the stage: "prepare", "train cartoon seed 0", ...
    started: str  # ISO 8601, UTC
    host: str
    token: str  # this holding's identity: its children carry it in WRITER_ENV

    @classmethod
    def of_this_process(cls, what: str) -> Holder:
        import psutil  # an ipykernel requirement

        command = " ".join(shlex.join(psutil.Process().cmdline()).split())  # one line
        command = command if len(command) <= 300 else command[:297] + "..."
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return cls(os.getpid(), command, what, started, os.uname().nodename, os.urandom(8).hex())

    @classmethod
    def read(cls, handle: int) -> Holder | None:
        try:
            return cls(**json.loads(os.pread(handle, 1 << 16, 0)))
        except (ValueError, TypeError, OSError):  # being written, or empty: the holder has not recorded itself yet
            return None

    def write(self, handle: int) -> None:
        os.ftruncate(handle, 0)
        os.pwrite(handle, (json.dumps(asdict(self), indent=1) + "\n").encode(), 0)  # in place: the lock is the inode's

    def alive(self) -> bool:
        import psutil

        return self.host == os.uname().nodename and psutil.pid_exists(self.pid)

    def describe(self) -> str:
        where = "" if self.host == os.uname().nodename else f" on host {self.host}"
        ended = "" if self.alive() or where else " (it has ended, but a process it started still holds the lock)"
        return f"process {self.pid}{where} ({self.what}), started {self.started}: {self.command}{ended}"


@dataclass
class RunDirWriter:
    """This process's hold on a run directory: ``primary`` when it took the lock, else it writes under the lock
    of ``holder``, an ancestor. :meth:`release` (or the end of a ``with`` block) lets go of a primary hold."""

    run_dir: Path
    holder: Holder
    primary: bool
    handle: int | None = None
    depth: int = 1  # hold_run_dir calls of this process on this directory not yet released
    environment: dict[str, str | None] = field(default_factory=dict)  # what the hold replaced in os.environ

    @property
    def identity(self) -> str:
        """What the processes it starts find in WRITER_ENV."""
        return json.dumps({"run_dir": str(self.run_dir), "pid": self.holder.pid, "token": self.holder.token})

    def release(self) -> None:
        if not self.primary or self.handle is None:
            return
        self.depth -= 1
        if self.depth:
            return
        for name, value in self.environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.close(self.handle)  # the lock goes with the descriptor
        self.handle = None
        _HELD.pop(self.run_dir, None)

    def __enter__(self) -> RunDirWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


_HELD: dict[Path, RunDirWriter] = {}  # this process's primary holds, by run directory


def hold_run_dir(run_dir: str | Path, what: str) -> RunDirWriter:
    """Become the run directory's writer (``what``: the pipeline, or the stage), or join the writer that started
    this process. Raises :class:`RunDirBusy`, naming the holder, when another process writes it.

    Taken again by the same process, the hold nests (each call is released once). Creates the run directory.
    """
    die_with_parent()
    run_dir = Path(run_dir).resolve()
    held = _HELD.get(run_dir)
    if held is not None and held.holder.pid == os.getpid():
        held.depth += 1
        return held
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        holder = take_lock(handle, run_dir)
    except BaseException:
        os.close(handle)
        raise
    if holder is not None:  # our ancestor's lock
        os.close(handle)
        return RunDirWriter(run_dir, holder, primary=False)
    holder = Holder.of_this_process(what)
    holder.write(handle)
    environment = {name: os.environ.get(name) for name in (WRITER_ENV, PARENT_ENV)}
    writer = RunDirWriter(run_dir, holder, primary=True, handle=handle, environment=environment)
    os.environ[WRITER_ENV] = writer.identity
    os.environ[PARENT_ENV] = str(os.getpid())  # the children it starts die with it
    _HELD[run_dir] = writer
    remove_stale_temporaries(run_dir)
    return writer


def writes_run_dir(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator of a function that writes the run directory passed to it as ``run_dir``: each call holds it
    (:func:`hold_run_dir`) and lets go when the call returns or raises, so nothing stays held after it. Within
    another hold of this process, or of the pipeline that started it, the call writes under that hold; another
    writer's hold refuses it with :class:`RunDirBusy`, naming that writer. ``what`` names this call's hold to a
    writer it refuses; ``{name}`` in it is the call's argument ``name``. A ``run_dir`` of None holds nothing."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)
        if "run_dir" not in signature.parameters:
            raise TypeError(f"writes_run_dir: {function.__qualname__} has no parameter run_dir")

        @functools.wraps(function)
        def holding(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            run_dir = arguments.arguments["run_dir"]
            if run_dir is None:
                return function(*args, **kwargs)
            with hold_run_dir(run_dir, what.format_map(arguments.arguments)):
                return function(*args, **kwargs)

        return holding

    return decorate


def take_lock(handle: int, run_dir: Path) -> Holder | None:
    """Lock ``handle`` (None: this process is the writer now), or return the holder whose lock this process
    writes under; raise RunDirBusy for any other holder. A holder that has just taken the lock is given
    HOLDER_SETTLE_S to record itself."""
    deadline = time.monotonic() + HOLDER_SETTLE_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        holder = Holder.read(handle)
        if holder is not None and started_by(holder, run_dir):
            return holder
        if (holder is not None and holder.alive()) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    who = holder.describe() if holder is not None else "a process that has not recorded itself"
    raise RunDirBusy(
        f"run directory {run_dir} is being written by {who}. A run directory has one writer at a time: wait for it "
        "to end or stop it, or use another run directory"
    )


def started_by(holder: Holder, run_dir: Path) -> bool:
    """Whether ``holder`` started this process (its identity in this process's environment, and it an ancestor):
    then this process writes under its lock."""
    import psutil

    try:
        identity = json.loads(os.environ.get(WRITER_ENV, ""))
    except ValueError:
        return False
    if identity.get("token") != holder.token or identity.get("run_dir") != str(run_dir):
        return False
    return holder.pid in {parent.pid for parent in psutil.Process().parents()}


def record_stage_fields(run_dir: str | Path, stage: str, **fields: Any) -> None:
    """Add ``fields`` to ``stages.<stage>`` of ``run.json`` (the pipeline's timings of a notebook)."""
    with locked_run_record(run_dir) as record:
        record.setdefault("stages", {}).setdefault(stage, {}).update(fields)
