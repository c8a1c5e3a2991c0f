from __future__ import annotations

import dataclasses
import functools
import multiprocessing.process
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tests.helpers import run_with_data
from utils.core import config
from utils.core.parameters import RunParams
from utils.data import prepare
from utils.train import training

# One torch thread in this process. On a 2-core machine that runs anything else, two threads of tiny convolutions
# wait on each other: a training step at TINY sizes took 4.7 s at 2 threads and 0.8 s at 1 (channels_last, load 1.5).
# Every comparison of weights in this process runs at this one count; a test that needs another (a notebook's share
# of the cores) sets it, and a child process started with helpers.SAME_THREADS gets this one too.
torch.set_num_threads(1)

# Small enough for a 2-core CPU, large enough for BatchNorm and a validation slice.
TINY = {
    "image_size": 32,
    "train_per_domain": 24,
    "test_per_domain": 8,
    "epochs": 1,
    "batch_size": 4,
    "eval_batch_size": 8,
    "n_examples": 2,
}


@pytest.fixture(scope="session")
def tiny_params() -> RunParams:
    return config.resolve_params("demo", TINY)


@pytest.fixture(scope="session")
def prepared_run(tmp_path_factory: pytest.TempPathFactory, tiny_params: RunParams) -> Path:
    """A run directory whose data stage is done (demo source, tiny sizes). Do not modify."""
    run_dir = tmp_path_factory.mktemp("prepared") / "run"
    prepare.prepare_data(tiny_params, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def two_epochs_straight(tmp_path_factory: pytest.TempPathFactory, prepared_run: Path, tiny_params: RunParams) -> Path:
    """The uninterrupted run every stop-and-resume is compared with: cartoon, two epochs in one go over
    ``prepared_run``'s data, at this process's thread count. Do not modify (copy it: helpers.resumable_copy)."""
    run_dir = run_with_data(tmp_path_factory.mktemp("straight") / "run", prepared_run)
    training.train(dataclasses.replace(tiny_params, epochs=2), run_dir, "cartoon", show_progress=False)
    return run_dir


@pytest.fixture(scope="session")
def one_epoch_run(
    tmp_path_factory: pytest.TempPathFactory, prepared_run: Path, tiny_params: RunParams
) -> Callable[[str], Path]:
    """``model`` -> a run directory holding that model (seed 0) after one epoch at ``tiny_params`` over
    ``prepared_run``'s data; trained at the first request, then shared. Do not modify (helpers.resumable_copy)."""
    run_dir = run_with_data(tmp_path_factory.mktemp("one_epoch") / "run", prepared_run)

    def trained(model: str) -> Path:
        if not (config.model_dir(run_dir, model, 0) / "checkpoint_last.pt").is_file():
            training.train(tiny_params, run_dir, model, show_progress=False)
        return run_dir

    return trained


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail the test after ``seconds``, so a hang fails it instead of stopping the suite (SIGALRM: the main
    thread only). pytest's failure is a BaseException: no handler in the code under test takes it for its own."""

    def expire(signum: int, frame: object) -> None:
        pytest.fail(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- the fast tier: a test not marked slow starts no process and no compiler ---------------------------------

_started: list[str] = []  # what the running test (not marked slow) started; empty while a slow test runs
_guarding = False


def _refuse(what: str) -> None:
    if _guarding:
        _started.append(what)
        pytest.fail(f"{what}: a test that starts processes or compilers is marked @pytest.mark.slow", pytrace=False)


def _guarded(start, describe):  # noqa: ANN001, ANN202
    @functools.wraps(start)
    def guarded(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        what = describe(*args, **kwargs)
        if what:
            _refuse(what)
        return start(*args, **kwargs)

    return guarded


# Queries of a few milliseconds that describe the machine or the commit, made wherever a run or a result is recorded:
# git (run.json's and a result file's commit) and uname (platform.platform(), in a result file's machine).
DESCRIBING_COMMANDS = ("git", "uname")


def _command(args: str | list[str]) -> str | None:
    argv = [args] if isinstance(args, (str, bytes)) else list(args)
    return None if Path(str(argv[0])).name in DESCRIBING_COMMANDS else f"subprocess {' '.join(map(str, argv))[:120]}"


subprocess.Popen._execute_child = _guarded(subprocess.Popen._execute_child, lambda self, args, *a, **k: _command(args))
multiprocessing.process.BaseProcess.start = _guarded(
    multiprocessing.process.BaseProcess.start, lambda self: f"multiprocessing process {self.name}"
)
torch.compile = _guarded(torch.compile, lambda *args, **kwargs: "torch.compile")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Setup (fixtures included), call and teardown of a test not marked slow run guarded; a start in another
    thread (which pytest.fail cannot stop) fails the test at its end."""
    global _guarding
    _guarding = item.get_closest_marker("slow") is None
    _started.clear()
    try:
        return (yield)
    finally:
        _guarding = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if _started:
        pytest.fail(f"started {_started[0]}: mark the test @pytest.mark.slow", pytrace=False)
    return result
